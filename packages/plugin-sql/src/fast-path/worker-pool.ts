import { availableParallelism } from 'node:os'
import { Worker } from 'node:worker_threads'
import type { MemberJob, MemberResult } from './copy-worker.js'

/**
 * Worker threads converting data-file members (copy-worker.ts). Only bytes cross: the compressed member goes in,
 * COPY text or inflated text comes back, every ArrayBuffer transferred, never copied or structured row by row.
 */
export class MemberPool {
  private readonly workers: Worker[] = []
  private readonly waiting = new Map<number, { resolve: (r: MemberResult) => void; reject: (e: unknown) => void }>()
  private next = 0
  private closed = false

  constructor(size = defaultPoolSize()) {
    for (let k = 0; k < size; k++) {
      const w = new Worker(new URL('./copy-worker.js', import.meta.url))
      w.on('message', (r: MemberResult) => {
        const p = this.waiting.get(r.id)
        this.waiting.delete(r.id)
        p?.resolve(r)
      })
      w.on('error', (err) => this.failAll(err))
      w.on('exit', (code) => {
        if (!this.closed) this.failAll(new Error(`a fast-path worker exited (${code})`))
      })
      this.workers.push(w)
    }
  }

  /** Members converted at once (two per worker keeps each busy while the main thread takes results). */
  get depth(): number {
    return this.workers.length * 2
  }

  /** Converts (or only inflates) one member; the member's ArrayBuffer is transferred. */
  run(member: ArrayBuffer, layout: MemberJob['layout']): Promise<MemberResult> {
    const id = this.next++
    const w = this.workers[id % this.workers.length]!
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject })
      w.postMessage({ id, member, layout } satisfies MemberJob, [member])
    })
  }

  private failAll(err: unknown): void {
    for (const p of this.waiting.values()) p.reject(err)
    this.waiting.clear()
  }

  /** Stops the workers. */
  async close(): Promise<void> {
    this.closed = true
    await Promise.all(this.workers.map((w) => w.terminate()))
  }
}

/** One worker per core beyond the main thread, at least one, at most four. */
export function defaultPoolSize(): number {
  return Math.max(1, Math.min(4, availableParallelism() - 1))
}
