import { AnchoviesError } from '../errors.js'

/**
 * Resolves like `work`, or rejects with the signal's reason `graceMs` after `signal` aborts if `work` has not
 * settled by then: user code that ignores its AbortSignal is abandoned instead of hanging the run.
 */
export async function withDeadline<T>(work: Promise<T>, signal: AbortSignal | undefined, graceMs: number): Promise<T> {
  if (!signal) return work
  let timer: NodeJS.Timeout | undefined
  let arm: (() => void) | undefined
  const deadline = new Promise<never>((_, reject) => {
    arm = () => {
      timer = setTimeout(() => reject(signal.reason ?? new AnchoviesError('ANCH_ERR_ABORTED', 'abandoned')), graceMs)
    }
    if (signal.aborted) arm()
    else signal.addEventListener('abort', arm, { once: true })
  })
  deadline.catch(() => undefined)
  try {
    return await Promise.race([work, deadline])
  } finally {
    clearTimeout(timer)
    if (arm) signal.removeEventListener('abort', arm)
  }
}
