import { sink } from '../decorators/index.js'
import { chunksOf } from '../execution/row-stream.js'
import { Operator, type Rows, type StreamContext } from './operator.js'

/** An operator that pulls data from a source into the datastore; every row goes to the default sink. */
export class Downloader extends Operator {
  /**
   * Writes every row of every table to the datastore's data buffer (gzip JSON lines under `data/<table>/`), staged
   * in the task's stage: the files become visible to uploaders when the batch commits, and are deleted if the task
   * fails. Redefine this method without `@sink` to turn it off.
   */
  @sink('*')
  async defaultSink(rows: Rows, ctx: StreamContext): Promise<void> {
    const table = ctx.output ?? ctx.table
    const writer = ctx.stage.writer(table)
    try {
      for await (const chunk of chunksOf(rows)) {
        for (const row of chunk) {
          const wait = writer.write(row)
          if (wait) await wait
        }
      }
      const files = await writer.close()
      const data = ctx.task.data
      data.files = ((data.files as number | undefined) ?? 0) + files.length
      data.bytes = ((data.bytes as number | undefined) ?? 0) + files.reduce((n, f) => n + f.bytes, 0)
    } catch (err) {
      await writer.abort(err as Error)
      throw err
    }
  }
}
