import { setTimeout as sleep } from 'node:timers/promises'
import { AnchoviesError } from '@anchovies/core'

/** How blob requests are retried (the SDK's own retries are off: it neither retries 429 nor honours Retry-After). */
export interface RetryOptions {
  /** Attempts per request, the first included. */
  readonly maxTries: number
  /** The first back-off; it doubles per retry (with jitter) up to `maxDelayMs`. */
  readonly baseDelayMs: number
  readonly maxDelayMs: number
  /** A try that takes longer than this is abandoned and retried (block uploads get four times as long). */
  readonly tryTimeoutMs: number
}

/** The defaults: 5 tries, 0.5 s doubling to at most 10 s (about 8 s of back-off in all), 60 s per try. */
export const DEFAULT_RETRY: RetryOptions = { maxTries: 5, baseDelayMs: 500, maxDelayMs: 10_000, tryTimeoutMs: 60_000 }

/** Retry options from `ACHVY_AZBLOB_MAX_TRIES`, `ACHVY_AZBLOB_RETRY_DELAY_MS`, `ACHVY_AZBLOB_MAX_RETRY_DELAY_MS`, `ACHVY_AZBLOB_TRY_TIMEOUT_MS`. */
export function retryOptionsFromEnv(env: NodeJS.ProcessEnv): RetryOptions {
  const num = (name: string, fallback: number, min: number): number => {
    const raw = env[name]
    if (raw === undefined || raw === '') return fallback
    const n = Number(raw)
    if (!Number.isFinite(n) || n < min)
      throw new AnchoviesError('ANCH_ERR_CONFIG', `${name}=${JSON.stringify(raw)}: expected a number ≥ ${min}`)
    return n
  }
  return {
    maxTries: Math.floor(num('ACHVY_AZBLOB_MAX_TRIES', DEFAULT_RETRY.maxTries, 1)),
    baseDelayMs: num('ACHVY_AZBLOB_RETRY_DELAY_MS', DEFAULT_RETRY.baseDelayMs, 0),
    maxDelayMs: num('ACHVY_AZBLOB_MAX_RETRY_DELAY_MS', DEFAULT_RETRY.maxDelayMs, 0),
    tryTimeoutMs: num('ACHVY_AZBLOB_TRY_TIMEOUT_MS', DEFAULT_RETRY.tryTimeoutMs, 100),
  }
}

/** What an error from the SDK says. */
interface Failure {
  readonly status: number | undefined
  readonly code: string | undefined
}

/** The HTTP status and the storage error code (`BlobNotFound`, `LeaseAlreadyPresent`, …) of an SDK error. */
export function failureOf(err: unknown): Failure {
  const e = err as { statusCode?: unknown; code?: unknown; details?: { errorCode?: unknown } } | null
  const status = typeof e?.statusCode === 'number' ? e.statusCode : undefined
  const code =
    typeof e?.details?.errorCode === 'string' ? e.details.errorCode : typeof e?.code === 'string' ? e.code : undefined
  return { status, code }
}

const TRANSIENT_STATUS = new Set([408, 429, 500, 502, 503, 504])
const NETWORK =
  /ECONNREFUSED|ECONNRESET|ETIMEDOUT|ESOCKETTIMEDOUT|EPIPE|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|REQUEST_SEND_ERROR|socket hang up|other side closed/i

/** True for throttling (429, 503 ServerBusy), server errors and network failures; never for 4xx answers that will not change. */
export function isTransient(err: unknown): boolean {
  if (err instanceof AnchoviesError) return false
  const { status } = failureOf(err)
  if (status !== undefined && status !== 0) return TRANSIENT_STATUS.has(status)
  return isNetwork(err)
}

function isNetwork(err: unknown): boolean {
  const { status, code } = failureOf(err)
  return (
    (status === undefined || status === 0) &&
    NETWORK.test(`${String(code ?? '')} ${String((err as Error | null)?.message ?? '')}`)
  )
}

function retryAfterMs(err: unknown): number | undefined {
  const headers = (err as { response?: { headers?: { get?(name: string): string | undefined } } } | null)?.response
    ?.headers
  const raw = typeof headers?.get === 'function' ? headers.get('retry-after') : undefined
  if (!raw) return undefined
  const seconds = Number(raw)
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000)
  const at = Date.parse(raw)
  return Number.isFinite(at) ? Math.max(0, at - Date.now()) : undefined
}

/** The longest `Retry-After` honoured (a longer one is cut to this). */
const MAX_RETRY_AFTER_MS = 60_000

/** Where a request went, for error messages (never with credentials). */
export interface Target {
  readonly accountUrl: string
  readonly container: string
}

/** Per-call tuning of {@link withRetry}. */
export interface CallOptions {
  /** Cancels the call (no retry after it fires). */
  readonly signal?: AbortSignal
  /** Multiplies the per-try timeout (block uploads). */
  readonly timeoutFactor?: number
  /** Replaces the per-try timeout (lease operations must answer well within the lease). */
  readonly tryTimeoutMs?: number
}

/**
 * Runs `fn` with retries and exponential back-off (with jitter, honouring `Retry-After`) on throttling, server errors,
 * network failures and per-try timeouts; any other failure is turned into an AnchoviesError saying what was being done.
 */
export async function withRetry<T>(
  retry: RetryOptions,
  target: Target,
  doing: string,
  fn: (signal: AbortSignal) => Promise<T>,
  options: CallOptions = {},
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    options.signal?.throwIfAborted()
    const timeout = AbortSignal.timeout(options.tryTimeoutMs ?? retry.tryTimeoutMs * (options.timeoutFactor ?? 1))
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout
    try {
      return await fn(signal)
    } catch (err) {
      if (options.signal?.aborted) throw options.signal.reason ?? err
      const timedOut = timeout.aborted
      if (attempt >= retry.maxTries || !(timedOut || isTransient(err)))
        throw describeFailure(err, target, doing, attempt, timedOut)
      const backoff = Math.min(retry.maxDelayMs, retry.baseDelayMs * 2 ** (attempt - 1))
      const asked = retryAfterMs(err)
      const wait = asked !== undefined ? Math.min(asked, MAX_RETRY_AFTER_MS) : backoff * (0.5 + Math.random() / 2)
      await sleep(wait, undefined, options.signal ? { signal: options.signal } : undefined)
    }
  }
}

/** A clear, credential-free error for a failed blob request. */
export function describeFailure(
  err: unknown,
  target: Target,
  doing: string,
  tries = 1,
  timedOut = false,
): AnchoviesError {
  if (err instanceof AnchoviesError) return err
  const where = `${target.accountUrl}/${target.container}`
  const after = tries > 1 ? ` after ${tries} tries` : ''
  if (timedOut)
    return new AnchoviesError('ANCH_ERR_DATASTORE', `${doing}: ${where} did not answer in time${after}`, { cause: err })
  const name = (err as { name?: unknown } | null)?.name
  if (
    name === 'CredentialUnavailableError' ||
    name === 'AuthenticationError' ||
    name === 'AggregateAuthenticationError'
  ) {
    return new AnchoviesError(
      'ANCH_ERR_DATASTORE',
      `${doing}: no Azure credential is available for ${target.accountUrl} (${String(name)}): set AZURE_STORAGE_CONNECTION_STRING, ` +
        'AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN, or provide an identity (managed identity, workload identity, az login)',
      { cause: err },
    )
  }
  const { status, code } = failureOf(err)
  if (isNetwork(err)) {
    const net =
      /(E[A-Z_]{4,}|socket hang up|other side closed)/.exec(String((err as Error).message))?.[1] ??
      code ??
      'network error'
    return new AnchoviesError('ANCH_ERR_DATASTORE', `${doing}: cannot reach ${target.accountUrl} (${net})${after}`, {
      cause: err,
    })
  }
  if (status === 401 || status === 403) {
    return new AnchoviesError(
      'ANCH_ERR_DATASTORE',
      `${doing}: ${target.accountUrl} refused the credentials (${status} ${code ?? ''}): check the account key, SAS or identity, ` +
        `that it may read, write, delete and list blobs in container ${target.container} (role Storage Blob Data Contributor), ` +
        "and that the account's firewall admits this network",
      { cause: err },
    )
  }
  if (code === 'ContainerNotFound') {
    return new AnchoviesError(
      'ANCH_ERR_DATASTORE',
      `${doing}: container ${where} does not exist: create it, or let anchovies create it (ACHVY_AZBLOB_CREATE_CONTAINER=true)`,
      { cause: err },
    )
  }
  const first = String((err as Error | null)?.message ?? err).split('\n')[0]
  return new AnchoviesError(
    'ANCH_ERR_DATASTORE',
    `${doing} failed${status ? ` (${status} ${code ?? ''})` : ''}${after}: ${first}`,
    { cause: err },
  )
}
