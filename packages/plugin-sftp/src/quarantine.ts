import { once } from 'node:events'
import type { Writable } from 'node:stream'
import { finished } from 'node:stream/promises'
import type { Datastore } from '@anchovies/core'
import type { BadRowError } from './errors.js'

const MAX_RAW = 64 * 1024

/**
 * Bad rows of one table task, written as JSON lines to `<user>/<id>/quarantine/<table>/<stamp>.<tag>.jsonl` in the
 * datastore. The file appears only when the task's rows were all read (`finish`); `discard` drops it.
 */
export class Quarantine {
  private out: Writable | undefined
  count = 0
  readonly path: string

  constructor(
    private readonly datastore: Datastore,
    home: string,
    table: string,
    tag: string,
  ) {
    const stamp = new Date().toISOString().replace(/[-:T]/g, '').slice(0, 14)
    this.path = `${home}/quarantine/${table}/${stamp}.${tag}.jsonl`
  }

  /** Records one bad row with its reason. */
  write(bad: BadRowError): void {
    this.out ??= this.datastore.writeStream(this.path)
    this.count++
    const raw = bad.raw.length > MAX_RAW ? bad.raw.slice(0, MAX_RAW) : bad.raw
    const rec = {
      file: bad.file,
      line: bad.line,
      column: bad.column ?? null,
      code: bad.code,
      reason: bad.reason,
      raw,
      ...(raw !== bad.raw ? { truncated: true } : {}),
    }
    this.out.write(`${JSON.stringify(rec)}\n`)
  }

  /** Resolves once the datastore stream has room again (back-pressure for files full of bad rows). */
  async drained(): Promise<void> {
    const out = this.out
    if (out?.writableNeedDrain) await once(out, 'drain')
  }

  /** Makes the file visible (when anything was written). */
  async finish(): Promise<string | undefined> {
    if (!this.out) return undefined
    const out = this.out
    out.end()
    await finished(out)
    return this.path
  }

  /** Drops the file (the task failed: its rows will be read again). */
  discard(): void {
    this.out?.destroy()
    this.out = undefined
  }
}
