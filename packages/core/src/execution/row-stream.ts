import type { Row } from '../types.js'

/**
 * What a sink or transform receives: iterate it row by row (`for await (const row of rows)`), or call
 * `chunks()` to receive the same rows as arrays, which is much faster for bulk writers.
 */
export interface RowStream extends AsyncIterable<Row> {
  chunks(): AsyncIterable<Row[]>
}

/** True when `rows` is a RowStream. */
export function isRowStream(rows: unknown): rows is RowStream {
  return typeof (rows as RowStream | undefined)?.chunks === 'function'
}

/** A RowStream over a stream of arrays of rows. Only one of its two views may be consumed. */
export function rowStream(chunks: AsyncIterable<Row[]>): RowStream {
  return {
    chunks: () => chunks,
    [Symbol.asyncIterator](): AsyncIterator<Row> {
      const it = chunks[Symbol.asyncIterator]()
      let buffer: Row[] = []
      let i = 0
      return {
        async next(): Promise<IteratorResult<Row>> {
          while (i >= buffer.length) {
            const r = await it.next()
            if (r.done) return { value: undefined, done: true }
            buffer = r.value
            i = 0
          }
          return { value: buffer[i++]!, done: false }
        },
        async return(): Promise<IteratorResult<Row>> {
          await it.return?.()
          return { value: undefined, done: true }
        },
      }
    },
  }
}

/** The rows of any async iterable as arrays: a RowStream's own chunks, else one-row arrays. */
export function chunksOf(rows: AsyncIterable<Row>): AsyncIterable<Row[]> {
  if (isRowStream(rows)) return rows.chunks()
  return {
    [Symbol.asyncIterator]: () => {
      const it = rows[Symbol.asyncIterator]()
      return {
        next: () => it.next().then((r) => (r.done ? r : { value: [r.value], done: false })),
        return: async () => {
          await it.return?.()
          return { value: undefined, done: true }
        },
      }
    },
  }
}
