import type { Row } from '../types.js'

/** Chunks of rows for one consumer; `close()` tells the producer this consumer is done. */
export type ClosableChunks = AsyncIterable<Row[]> & { close(): void }

/** The consumers of one fan-out, as a commit point sees them. */
export interface FanOutState {
  /**
   * Resolves once every open consumer has taken every chunk queued for it and asks for the next one (so it has
   * handled all earlier rows) or has stopped.
   */
  idle(): Promise<void>
}

/**
 * Splits one async stream of row chunks into `n` consumers with a bounded buffer each (`capacity` rows): the
 * source is pulled only while every open consumer has room, so a slow sink slows the source and memory stays
 * bounded. A consumer that stops early is dropped; when all stop, the source is closed. An error in the source
 * reaches every consumer.
 */
export function fanOut(
  source: AsyncIterable<Row[]>,
  n: number,
  capacity: number,
  signal: AbortSignal,
  state?: { fanOut?: FanOutState },
): ClosableChunks[] {
  // One consumer pulls the source itself: while the source runs, that consumer is waiting, so it is always idle.
  if (n === 1) return [Object.assign(source, { close: () => undefined })]
  const queues: Row[][][] = Array.from({ length: n }, () => [])
  const sizes: number[] = Array(n).fill(0)
  const open: boolean[] = Array(n).fill(true)
  const consumerWaiters: ((() => void) | undefined)[] = Array(n).fill(undefined)
  let producerWaiter: (() => void) | undefined
  let ended = false
  let failure: { error: unknown } | undefined
  let started = false

  const wakeConsumers = (): void => {
    for (let i = 0; i < n; i++) {
      const w = consumerWaiters[i]
      consumerWaiters[i] = undefined
      w?.()
    }
  }
  const wakeProducer = (): void => {
    const w = producerWaiter
    producerWaiter = undefined
    w?.()
  }
  const hasRoom = (): boolean => sizes.every((size, i) => !open[i] || size < capacity)
  const waiting: boolean[] = Array(n).fill(false)
  let idleWaiters: (() => void)[] = []
  const isIdle = (): boolean => queues.every((q, i) => !open[i] || (q.length === 0 && waiting[i]))
  const checkIdle = (): void => {
    if (!idleWaiters.length || !(isIdle() || ended)) return
    const ws = idleWaiters
    idleWaiters = []
    for (const w of ws) w()
  }
  if (state)
    state.fanOut = {
      idle: () => (isIdle() || ended ? Promise.resolve() : new Promise<void>((resolve) => idleWaiters.push(resolve))),
    }

  const pump = async (): Promise<void> => {
    const it = source[Symbol.asyncIterator]()
    try {
      while (open.some(Boolean)) {
        if (signal.aborted) throw signal.reason
        if (!hasRoom()) {
          await new Promise<void>((resolve) => (producerWaiter = resolve))
          continue
        }
        const r = await it.next()
        if (r.done) break
        for (let i = 0; i < n; i++) {
          if (!open[i]) continue
          queues[i]!.push(r.value)
          sizes[i]! += r.value.length
        }
        wakeConsumers()
      }
      if (!open.some(Boolean)) await it.return?.()
    } catch (error) {
      failure = { error }
      await it.return?.().catch(() => undefined)
    } finally {
      ended = true
      wakeConsumers()
      checkIdle()
    }
  }
  const onAbort = (): void => wakeProducer()
  signal.addEventListener('abort', onAbort, { once: true })

  const close = (i: number): void => {
    open[i] = false
    queues[i]!.length = 0
    sizes[i] = 0
    wakeProducer()
    checkIdle()
  }
  return queues.map((queue, i) => ({
    close: () => close(i),
    [Symbol.asyncIterator](): AsyncIterator<Row[]> {
      if (!started) {
        started = true
        void pump().finally(() => signal.removeEventListener('abort', onAbort))
      }
      return {
        async next(): Promise<IteratorResult<Row[]>> {
          for (;;) {
            if (queue.length) {
              const value = queue.shift()!
              sizes[i]! -= value.length
              if (sizes[i]! < capacity) wakeProducer()
              return { value, done: false }
            }
            if (failure) throw failure.error
            if (ended) return { value: undefined, done: true }
            waiting[i] = true
            checkIdle()
            await new Promise<void>((resolve) => (consumerWaiters[i] = resolve))
            waiting[i] = false
          }
        },
        async return(): Promise<IteratorResult<Row[]>> {
          close(i)
          return { value: undefined, done: true }
        },
      }
    },
  }))
}
