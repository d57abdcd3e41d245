// The floor for the benchmark: an uploader that reads the upstream rows and drops them (what reading alone costs).
import { Uploader, sink } from '@anchovies/core'

export class NullUploader extends Uploader {
  async drop(rows) {
    let n = 0
    for await (const _ of rows) n++
    return n
  }
}
sink('*')(NullUploader.prototype, 'drop', Object.getOwnPropertyDescriptor(NullUploader.prototype, 'drop'))
