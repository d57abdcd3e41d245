import { readFileSync } from 'node:fs'
import * as nodePath from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { Connection, context, createLogger, type ConnectionAttributes } from '@anchovies/core'
import type { Logger } from '@anchovies/core'
import ssh2 from 'ssh2'
import { SftpError } from './errors.js'
import { hostKeyPolicy, knownHostsPolicy } from './host-key.js'
import { LocalFs, isNotFound, type RemoteFile, type RemoteFs } from './remote-fs.js'
import { SftpFs, type SftpTarget } from './sftp-fs.js'

/** Connection settings, from `ACHVY_CNXN__*` (default) or `ACHVY_CNXN__<ID>__*` (named). */
export interface SftpSettings {
  /** `sftp://user@host:port/base` or `file:///folder`, no password (safe to log). */
  readonly display: string
  readonly local: string | undefined
  readonly target: SftpTarget | undefined
  /** Attempts after a transient failure (connect, list, read, after-actions). */
  readonly retries: number
  /** First back-off delay in ms (doubles each attempt, capped at 30 s). */
  readonly retryDelayMs: number
}

const TRANSIENT_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
  'ECONNABORTED',
  'ERR_NOT_CONNECTED',
  'ERR_GENERIC_CLIENT',
  'CONNECT',
  'IDLE_TIMEOUT',
  6,
  7,
])
const TRANSIENT_MESSAGE =
  /no response from server|not connected|connection lost|keepalive timeout|timed out|socket (hang up|closed)|channel (open failure|closed)|premature close|connection reset|ended by other party|no sftp connection/i

/** True when `err` is worth a retry: network trouble or a dropped session, never bad credentials or paths. */
export function isTransient(err: unknown): boolean {
  if (err instanceof SftpError) return (err as { transientCode?: string }).transientCode !== undefined
  const e = err as { code?: unknown; message?: unknown } | undefined
  if (!e) return false
  if (TRANSIENT_CODES.has(e.code as string)) return true
  return typeof e.message === 'string' && TRANSIENT_MESSAGE.test(e.message)
}

/**
 * Reads the connection attributes: `uri` (`sftp://user[:password]@host[:port][/base]`, `file:///folder` or a
 * plain path), `ppk_path`, `passphrase`, `host_key`, `known_hosts`, `timeout` (s), `retries`, `retry_delay` (s).
 */
export function readSftpSettings(attrs: ConnectionAttributes): SftpSettings {
  const uri = String(attrs.uri ?? '').trim()
  if (!uri)
    throw new SftpError(
      'ANCH_ERR_SFTP_CONFIG',
      'the connection has no URI: set ACHVY_CNXN__URI (sftp://user@host:22/base or file:///folder)',
    )
  const num = (key: string, fallback: number, min: number): number => {
    const v = attrs[key]
    if (v === undefined || v === '') return fallback
    const n = Number(v)
    if (!Number.isFinite(n) || n < min)
      throw new SftpError('ANCH_ERR_SFTP_CONFIG', `connection attribute ${key.toUpperCase()} must be a number ≥ ${min}`)
    return n
  }
  const retries = num('retries', 3, 0)
  const retryDelayMs = num('retry_delay', 1, 0) * 1000
  const timeoutMs = num('timeout', 30, 1) * 1000

  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(uri) || uri.toLowerCase().startsWith('file://')) {
    const folder = uri.toLowerCase().startsWith('file://') ? fileURLToPath(uri) : nodePath.resolve(uri)
    return { display: `file://${folder}`, local: folder, target: undefined, retries, retryDelayMs }
  }
  let url: URL
  try {
    url = new URL(uri)
  } catch {
    // The message must not echo the URI: it may hold a password.
    throw new SftpError(
      'ANCH_ERR_SFTP_CONFIG',
      'ACHVY_CNXN__URI is not a valid URL (expected sftp://user[:password]@host[:port][/base])',
    )
  }
  if (url.protocol !== 'sftp:' && url.protocol !== 'ssh:') {
    throw new SftpError(
      'ANCH_ERR_SFTP_CONFIG',
      `ACHVY_CNXN__URI: unsupported scheme ${url.protocol} (use sftp:// or file://)`,
    )
  }
  const username = decodeURIComponent(url.username)
  if (!username) throw new SftpError('ANCH_ERR_SFTP_CONFIG', 'ACHVY_CNXN__URI has no user name (sftp://user@host)')
  const password = url.password ? decodeURIComponent(url.password) : undefined
  const port = url.port ? Number(url.port) : 22
  const host = url.hostname.replace(/^\[|\]$/g, '')
  let base = decodeURIComponent(url.pathname || '/')
  if (base.startsWith('/~')) base = base.slice(1)
  while (base.endsWith('/')) base = base.slice(0, -1)
  base ||= '/'
  const keyPath = attrs.ppk_path !== undefined && attrs.ppk_path !== '' ? String(attrs.ppk_path) : undefined
  const passphrase = attrs.passphrase !== undefined && attrs.passphrase !== '' ? String(attrs.passphrase) : undefined
  const privateKey = keyPath ? readPrivateKey(keyPath, passphrase) : undefined
  if (!privateKey && password === undefined) {
    throw new SftpError(
      'ANCH_ERR_SFTP_CONFIG',
      'the connection has neither a password in ACHVY_CNXN__URI nor a key in ACHVY_CNXN__PPK_PATH',
    )
  }
  const hostKeyAttr = attrs.host_key !== undefined && attrs.host_key !== '' ? String(attrs.host_key) : undefined
  const knownHosts = attrs.known_hosts !== undefined && attrs.known_hosts !== '' ? String(attrs.known_hosts) : undefined
  const hostKey = hostKeyAttr
    ? hostKeyPolicy(hostKeyAttr)
    : knownHosts
      ? knownHostsPolicy(knownHosts, host, port)
      : undefined
  const display = `sftp://${encodeURIComponent(username)}@${url.host}${base === '/' ? '' : base.startsWith('~') ? `/${base}` : base}`
  return {
    display,
    local: undefined,
    target: { host, port, username, password, privateKey, passphrase, base, hostKey, timeoutMs, display },
    retries,
    retryDelayMs,
  }
}

function readPrivateKey(path: string, passphrase: string | undefined): Buffer {
  let key: Buffer
  try {
    key = readFileSync(path)
  } catch (err) {
    throw new SftpError(
      'ANCH_ERR_SFTP_KEY',
      `PPK_PATH: cannot read the key file ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
      { cause: err },
    )
  }
  const text = key.toString('latin1')
  if (text.startsWith('PuTTY-User-Key-File-3')) {
    throw new SftpError(
      'ANCH_ERR_SFTP_KEY',
      `PPK_PATH: ${path} is a PuTTY v3 key; convert it with: puttygen ${path} -O private-openssh -o key.pem (or save it as PPK version 2)`,
    )
  }
  const parsed = ssh2.utils.parseKey(key, passphrase)
  if (parsed instanceof Error) {
    const encrypted = /encrypted|passphrase|decrypt|integrity/i.test(parsed.message)
    throw new SftpError(
      'ANCH_ERR_SFTP_KEY',
      encrypted
        ? `PPK_PATH: cannot decrypt the key ${path}: ${passphrase === undefined ? 'it needs ACHVY_CNXN__PASSPHRASE' : 'wrong PASSPHRASE'}`
        : `PPK_PATH: ${path} is not a private key ssh2 understands (OpenSSH, PEM, or PuTTY v2 RSA/DSA)`,
    )
  }
  return key
}

/**
 * An SFTP server (or a local folder) the CsvDownloader reads from. Opening it is lazy and retried with back-off;
 * a session that drops is reopened on the next use. Secrets stay inside; `toJSON` masks them.
 */
export class SftpConnection extends Connection {
  static override requiredAttributes = ['uri']
  private parsed: SftpSettings | undefined
  private fs: RemoteFs | undefined
  private opening: Promise<RemoteFs> | undefined
  private logger: Logger | undefined

  /** The validated settings (throws a coded error on bad attributes). */
  get settings(): SftpSettings {
    this.parsed ??= readSftpSettings(this.attrs)
    return this.parsed
  }

  /**
   * Does nothing: the runtime opens every declared connection, and the default one may be unused (`--cnxn`).
   * The session opens on first use, or through `open`, which also validates the attributes.
   */
  override async connect(): Promise<void> {}

  /** Validates the attributes and opens the session now (with retries), so that bad credentials fail at startup. */
  async open(logger: Logger, signal?: AbortSignal): Promise<void> {
    this.logger = logger
    await this.withRetry('connecting', async () => undefined, signal)
  }

  override async close(): Promise<void> {
    const fs = this.fs
    this.fs = undefined
    this.opening = undefined
    await fs?.close()
  }

  override async check(): Promise<void> {
    await this.withRetry('listing the base folder', (fs) => fs.list(''))
  }

  private log(): Logger {
    if (this.logger) return this.logger
    try {
      return context().logger
    } catch {
      // Outside a run (e.g. `anchovy healthcheck --connections`): warnings still go to stderr, masked.
      this.logger = createLogger('warn')
      return this.logger
    }
  }

  private async ensure(signal?: AbortSignal): Promise<RemoteFs> {
    if (this.fs && (!(this.fs instanceof SftpFs) || this.fs.alive)) return this.fs
    this.fs = undefined
    this.opening ??= (async () => {
      const s = this.settings
      const fs = s.local !== undefined ? await openLocal(s.local) : await SftpFs.open(s.target!, this.log(), signal)
      this.fs = fs
      return fs
    })().finally(() => {
      this.opening = undefined
    })
    return this.opening
  }

  /** Drops the session `fs` (after a transient error) so that the next use reconnects. */
  private async reset(fs: RemoteFs | undefined): Promise<void> {
    if (fs && this.fs === fs) this.fs = undefined
    await fs?.close().catch(() => undefined)
  }

  /** Runs `fn` on an open session; transient failures reconnect and retry with exponential back-off. */
  async withRetry<T>(what: string, fn: (fs: RemoteFs) => Promise<T>, signal?: AbortSignal): Promise<T> {
    const { retries } = this.settings
    for (let attempt = 1; ; attempt++) {
      let fs: RemoteFs | undefined
      try {
        fs = await this.ensure(signal)
        return await fn(fs)
      } catch (err) {
        if (signal?.aborted) throw signal.reason
        if (!isTransient(err) || attempt > retries) throw this.final(err, what, attempt)
        await this.backoff(err, what, attempt, fs, signal)
      }
    }
  }

  private async backoff(
    err: unknown,
    what: string,
    attempt: number,
    fs: RemoteFs | undefined,
    signal?: AbortSignal,
  ): Promise<void> {
    const { retries, retryDelayMs } = this.settings
    const delay = Math.min(30_000, retryDelayMs * 2 ** (attempt - 1))
    this.log().warn(
      { connection: this.settings.display, attempt, retries, delay_ms: delay, code: codeOf(err) },
      `sftp: ${what} failed; retrying`,
    )
    await this.reset(fs)
    await sleep(delay, undefined, signal ? { signal } : {})
  }

  private final(err: unknown, what: string, attempt: number): Error {
    if (err instanceof SftpError && !(err as { transientCode?: string }).transientCode) return err
    if (!isTransient(err)) {
      if (isNotFound(err))
        return new SftpError('ANCH_ERR_SFTP_PATH', `${this.settings.display}: ${what}: no such file or folder`, {
          cause: err,
        })
      const e = err as { code?: unknown; message?: unknown }
      if (
        e?.code === 'EACCES' ||
        e?.code === 'EPERM' ||
        e?.code === 3 ||
        /permission denied/i.test(String(e?.message ?? ''))
      ) {
        return new SftpError('ANCH_ERR_SFTP_PATH', `${this.settings.display}: ${what}: permission denied`, {
          cause: err,
        })
      }
      return err as Error
    }
    return new SftpError(
      'ANCH_ERR_SFTP_CONNECT',
      `${this.settings.display}: ${what} failed ${attempt} time(s) (${codeOf(err) ?? 'connection error'}); giving up`,
      { cause: err },
    )
  }

  /**
   * Streams a file's bytes from byte `start` (a file resumed where an earlier run's last commit left it). A dropped session is reopened and the transfer resumes at the byte where it stopped,
   * after checking the file is unchanged; a file that changes (size or mtime) while being read fails with
   * ANCH_ERR_SFTP_FILE_CHANGED, so no half-written file is ever taken.
   */
  async *read(file: RemoteFile, signal: AbortSignal, start = 0): AsyncGenerator<Buffer> {
    const { retries } = this.settings
    const idleMs = this.settings.target?.timeoutMs ?? 30_000
    let offset = start
    let attempt = 0
    const changed = (why: string): SftpError =>
      new SftpError(
        'ANCH_ERR_SFTP_FILE_CHANGED',
        `${this.settings.display}: /${file.path} changed while it was being read (${why}); it is read again next run — set min_age if files are still being uploaded`,
      )
    for (;;) {
      let fs: RemoteFs | undefined
      try {
        fs = await this.ensure(signal)
        if (attempt > 0) {
          const st = await fs.stat(file.path)
          if (st.size !== file.size || st.mtime !== file.mtime)
            throw changed('size or mtime differs after reconnecting')
        }
        const stream = fs.read(file.path, offset)
        // Each read races the session's death and an idle timer (no byte for `timeout` while we wait for one):
        // a dead ssh2 stream would otherwise never settle.
        // (No Promise.race against one long-lived promise: its reactions would keep every chunk alive.)
        let failure: Error | undefined
        let rejectCurrent: ((err: Error) => void) | undefined
        const fail = (err: Error): void => {
          failure ??= err
          rejectCurrent?.(err)
        }
        const unwatch = fs.watch?.(fail) ?? (() => undefined)
        const onAbort = (): void => fail(signal.reason as Error)
        signal.addEventListener('abort', onAbort, { once: true })
        let timer: NodeJS.Timeout | undefined
        const chunks = (stream as AsyncIterable<Buffer>)[Symbol.asyncIterator]()
        try {
          for (;;) {
            timer = setTimeout(
              () => fail(Object.assign(new Error(`no data for ${idleMs} ms`), { code: 'IDLE_TIMEOUT' })),
              idleMs,
            )
            const next = await new Promise<IteratorResult<Buffer>>((resolve, reject) => {
              if (failure) return reject(failure)
              rejectCurrent = reject
              chunks.next().then(resolve, reject)
            })
            rejectCurrent = undefined
            clearTimeout(timer)
            if (next.done) break
            const chunk = next.value
            if (signal.aborted) throw signal.reason
            offset += chunk.length
            attempt = 0
            if (offset > file.size) throw changed(`more than the ${file.size} bytes listed`)
            yield chunk
          }
        } finally {
          clearTimeout(timer)
          unwatch()
          signal.removeEventListener('abort', onAbort)
          // ssh2 may report a late handle-close failure after the session ended: never let it crash the process.
          stream.on('error', () => undefined)
          stream.destroy()
        }
        if (offset !== file.size) throw changed(`${offset} bytes read, ${file.size} listed`)
        const st = await fs.stat(file.path)
        if (st.size !== file.size || st.mtime !== file.mtime) throw changed('size or mtime differs after reading')
        return
      } catch (err) {
        this.log().debug({ err, file: file.path, offset }, 'sftp: read interrupted')
        if (signal.aborted) throw signal.reason
        if (!isTransient(err) || ++attempt > retries) throw this.final(err, `reading /${file.path}`, attempt)
        this.log().warn(
          { file: file.path, offset },
          'sftp: transfer interrupted; resuming at the same byte after reconnecting',
        )
        await this.backoff(err, `reading /${file.path}`, attempt, fs, signal)
      }
    }
  }
}

async function openLocal(folder: string): Promise<RemoteFs> {
  const fs = new LocalFs(folder)
  try {
    await fs.list('')
  } catch (err) {
    throw new SftpError('ANCH_ERR_SFTP_PATH', `file://${folder}: the folder does not exist or cannot be read`, {
      cause: err,
    })
  }
  return fs
}

function codeOf(err: unknown): string | undefined {
  const e = err as { transientCode?: string; code?: unknown } | undefined
  return e?.transientCode ?? (e?.code !== undefined ? String(e.code) : undefined)
}
