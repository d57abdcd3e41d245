import { Readable } from 'node:stream'
import { promisify } from 'node:util'
import { createGunzip, gunzip } from 'node:zlib'
import { memberLength } from '@anchovies/core'
import { ownBuffer } from './copy-converter.js'
import type { MemberJob, MemberResult } from './copy-worker.js'
import type { MemberPool } from './worker-pool.js'

const gunzipAsync = promisify(gunzip)

/** What the reader hands on, in file order: a member's result from a worker, or inflated text of a plain gzip tail. */
export type MemberItem =
  | { readonly kind: 'member'; readonly result: MemberResult }
  | { readonly kind: 'text'; readonly text: Buffer }

/**
 * The members of one data file, converted by `pool` for the layout `layoutNow()` gives when each is dispatched,
 * in file order. The loop mirrors core's inflateMembers so errors surface at the same point of the file: a member
 * that fails to inflate throws when its turn comes, a file cut inside a member throws after the members before the
 * last complete one, and from the first member without a recorded length (plain gzip, e.g. written by Python) the
 * rest is inflated as one stream and handed on as text.
 */
export async function* readMembers(
  input: AsyncIterable<Buffer>,
  pool: MemberPool,
  layoutNow: () => MemberJob['layout'],
): AsyncGenerator<MemberItem> {
  const it = input[Symbol.asyncIterator]()
  const jobs: Promise<MemberResult>[] = []
  let pending: Buffer = Buffer.alloc(0)
  let ended = false
  const more = async (): Promise<boolean> => {
    if (ended) return false
    const r = await it.next()
    if (r.done) {
      ended = true
      return false
    }
    pending = pending.length ? Buffer.concat([pending, r.value]) : r.value
    return true
  }
  const take = async (): Promise<MemberItem> => {
    const result = await jobs.shift()!
    if (result.member) {
      // The worker could not inflate it: inflate here as core does, for core's error.
      await gunzipAsync(Buffer.from(result.member))
      throw new Error('unexpected end of file')
    }
    return { kind: 'member', result }
  }
  try {
    for (;;) {
      let length = memberLength(pending)
      while (length === undefined || (length !== null && pending.length < length)) {
        if (!(await more())) break
        length = memberLength(pending)
      }
      if (length === null) break
      if (length === undefined || pending.length < length) {
        if (pending.length === 0) break
        // core's reader (two members ahead) has handed on all but the last complete member when it finds this.
        while (jobs.length > 1) yield await take()
        throw new Error('unexpected end of file')
      }
      const member = ownBuffer(pending.subarray(0, length))
      pending = pending.subarray(length)
      const job = pool.run(member, layoutNow())
      job.catch(() => undefined)
      jobs.push(job)
      if (jobs.length >= pool.depth) yield await take()
    }
    while (jobs.length) yield await take()
    if (pending.length === 0 && ended) return
    const rest = pending
    const tail = Readable.from(
      (async function* () {
        if (rest.length) yield rest
        for (let r = await it.next(); !r.done; r = await it.next()) yield r.value
      })(),
      { objectMode: false },
    )
    const stream = tail.pipe(createGunzip({ chunkSize: 256 * 1024 }))
    tail.on('error', (err) => stream.destroy(err))
    try {
      for await (const chunk of stream as AsyncIterable<Buffer>) yield { kind: 'text', text: chunk }
    } finally {
      tail.destroy()
      stream.destroy()
    }
  } finally {
    for (const job of jobs) job.catch(() => undefined)
    await it.return?.()
  }
}
