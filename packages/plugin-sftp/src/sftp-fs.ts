import * as posix from 'node:path/posix'
import type { Readable } from 'node:stream'
import type { Logger } from 'pino'
import SftpClient from 'ssh2-sftp-client'
import { SftpError } from './errors.js'
import { fingerprint, type HostKeyPolicy } from './host-key.js'
import type { RemoteEntry, RemoteFs } from './remote-fs.js'

/** Where and how to log in (credentials stay in memory only; `display` is safe to log). */
export interface SftpTarget {
  readonly host: string
  readonly port: number
  readonly username: string
  readonly password: string | undefined
  readonly privateKey: Buffer | undefined
  readonly passphrase: string | undefined
  /** Base folder: absolute, or `~`-relative (`~`, `~/in`). */
  readonly base: string
  readonly hostKey: HostKeyPolicy | undefined
  readonly timeoutMs: number
  /** `sftp://user@host:port/base`, no password. */
  readonly display: string
}

/** An open SFTP session (ssh2-sftp-client); paths are relative to the base folder. */
export class SftpFs implements RemoteFs {
  /** False once the SSH connection closed or failed; the owner then reconnects. */
  alive = true
  /** Called with an error when the session is lost: pending requests and transfers. */
  private readonly waiters = new Set<(err: Error) => void>()

  private constructor(
    private readonly client: SftpClient,
    private readonly base: string,
    private readonly timeoutMs: number,
  ) {}

  /** Connects, authenticates, verifies the host key and resolves the base folder. */
  static async open(target: SftpTarget, logger: Logger, signal?: AbortSignal): Promise<SftpFs> {
    let lastError: (Error & { level?: string }) | undefined
    let rejected: string | undefined
    const client = new SftpClient('anchovies', {
      error: (err: unknown) => logger.debug({ err: { message: (err as Error).message } }, 'sftp connection error'),
      end: () => logger.debug('sftp connection ended'),
      close: () => logger.debug('sftp connection closed'),
    })
    let fs: SftpFs | undefined
    client.on('error', (err: Error) => {
      lastError = err
      fs?.lost()
    })
    client.on('close', () => fs?.lost())
    client.on('end', () => fs?.lost())
    const password = target.password
    client.on('keyboard-interactive', ((_n: string, _i: string, _l: string, prompts: unknown[], finish: (answers: string[]) => void) => {
      finish(prompts.map(() => password ?? ''))
    }) as never)
    const onAbort = (): void => void client.end().catch(() => undefined)
    signal?.addEventListener('abort', onAbort, { once: true })
    const policy = target.hostKey
    // readyTimeout covers the SSH handshake only; this bounds opening the sftp channel and resolving the base too.
    let timer: NodeJS.Timeout | undefined
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(Object.assign(new Error(`no SFTP session within ${target.timeoutMs} ms`), { code: 'ETIMEDOUT' })), target.timeoutMs + 1000)
    })
    timedOut.catch(() => undefined)
    const within = <T>(p: Promise<T>): Promise<T> => Promise.race([p, timedOut])
    try {
      await within(client.connect({
        host: target.host,
        port: target.port,
        username: target.username,
        ...(password !== undefined ? { password } : {}),
        ...(target.privateKey ? { privateKey: target.privateKey } : {}),
        ...(target.passphrase !== undefined ? { passphrase: target.passphrase } : {}),
        tryKeyboard: password !== undefined,
        readyTimeout: target.timeoutMs,
        keepaliveInterval: Math.max(1000, Math.min(10_000, target.timeoutMs / 3)),
        keepaliveCountMax: 3,
        ...(policy?.algorithms ? { algorithms: { serverHostKey: policy.algorithms as never } } : {}),
        hostVerifier: (key: Buffer) => {
          const fp = fingerprint(key)
          if (!policy) {
            logger.warn({ host: target.host, port: target.port, fingerprint: fp }, 'the sftp host key is not verified: set HOST_KEY (this fingerprint, once checked) or KNOWN_HOSTS')
            return true
          }
          if (policy.fingerprints.has(fp)) return true
          rejected = fp
          return false
        },
      }))
      // Without TCP_NODELAY each sequential read waits for the peer's delayed ACK (~40 ms): 100x slower.
      ;(client as unknown as { client: { setNoDelay(on: boolean): void } }).client.setNoDelay(true)
      fs = new SftpFs(client, await within(resolveBase(client, target.base)), target.timeoutMs)
      return fs
    } catch (err) {
      void client.end().catch(() => undefined)
      if (signal?.aborted) throw signal.reason
      throw classify(err, lastError, rejected, target)
    } finally {
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
    }
  }

  private abs(path: string): string {
    return posix.join(this.base, ...path.split('/').filter(Boolean))
  }

  /**
   * Runs one request; rejects (as a transient error) when the session is lost or nothing answers within the
   * timeout, because a request on a dead ssh2 channel may otherwise never settle.
   */
  private guard<T>(op: () => Promise<T>): Promise<T> {
    if (!this.alive) return Promise.reject(sessionLost())
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(Object.assign(new Error(`no answer within ${this.timeoutMs} ms`), { code: 'IDLE_TIMEOUT' })), this.timeoutMs)
      this.waiters.add(reject)
      op()
        .then(resolve, reject)
        .finally(() => {
          clearTimeout(timer)
          this.waiters.delete(reject)
        })
    })
  }

  async list(dir: string): Promise<RemoteEntry[]> {
    const items = await this.guard(() => this.client.list(this.abs(dir)))
    return items.map((i) => ({
      name: i.name,
      type: i.type === '-' ? 'file' : i.type === 'd' ? 'dir' : i.type === 'l' ? 'link' : 'other',
      size: i.size,
      mtime: i.modifyTime,
    }))
  }

  async stat(path: string): Promise<RemoteEntry> {
    const st = await this.guard(() => this.client.stat(this.abs(path)))
    return { name: posix.basename(path), type: st.isFile ? 'file' : st.isDirectory ? 'dir' : 'other', size: st.size, mtime: st.modifyTime }
  }

  read(path: string, start: number): Readable {
    if (!this.alive) throw sessionLost()
    return this.client.createReadStream(this.abs(path), { start, highWaterMark: 64 * 1024 } as never) as unknown as Readable
  }

  /**
   * Calls `onLost` if the session dies; returns the unsubscribe function. An ssh2 read stream whose channel
   * closed neither ends nor errors (destroying it waits for a handle close that never answers), so readers
   * must race their reads against this.
   */
  watch(onLost: (err: Error) => void): () => void {
    if (!this.alive) {
      onLost(sessionLost())
      return () => undefined
    }
    this.waiters.add(onLost)
    return () => void this.waiters.delete(onLost)
  }

  /** Marks the session dead and fails every pending request and transfer. */
  lost(): void {
    this.alive = false
    const waiters = [...this.waiters]
    this.waiters.clear()
    for (const fail of waiters) fail(sessionLost())
  }

  async delete(path: string): Promise<void> {
    await this.guard(() => this.client.delete(this.abs(path), true))
  }

  async rename(from: string, to: string): Promise<void> {
    await this.guard(() => this.client.rename(this.abs(from), this.abs(to)))
  }

  async mkdirp(dir: string): Promise<void> {
    const abs = this.abs(dir)
    if (!(await this.guard(() => this.client.exists(abs)))) await this.guard(() => this.client.mkdir(abs, true))
  }

  async close(): Promise<void> {
    const wasAlive = this.alive
    this.lost()
    const ending = this.client.end().catch(() => undefined)
    // On a session that already died, ssh2-sftp-client's end() waits for a 'close' event that has fired already.
    if (!wasAlive) return
    let timer: NodeJS.Timeout | undefined
    await Promise.race([ending, new Promise((resolve) => (timer = setTimeout(resolve, 2000)))])
    clearTimeout(timer)
  }
}

function sessionLost(): Error {
  return Object.assign(new Error('the SFTP session closed'), { code: 'ECONNRESET' })
}

async function resolveBase(client: SftpClient, base: string): Promise<string> {
  if (base !== '~' && !base.startsWith('~/')) return base
  const home = await client.realPath('.')
  return posix.join(home, base.slice(1))
}

/** Turns a connect failure into a coded error with a message that names the server but no credentials. */
function classify(err: unknown, raw: (Error & { level?: string }) | undefined, rejectedKey: string | undefined, target: SftpTarget): Error {
  if (err instanceof SftpError) return err
  const where = target.display
  if (rejectedKey) {
    return new SftpError(
      'ANCH_ERR_SFTP_HOST_KEY',
      `${where}: the server's host key ${rejectedKey} does not match ${target.hostKey!.source} (expected ${[...target.hostKey!.fingerprints].join(', ')}); ` +
        'if the server key really changed, verify it out of band and update the setting',
    )
  }
  const e = err as { message?: string; code?: unknown; level?: string }
  const level = raw?.level ?? e.level
  const message = `${raw?.message ?? ''} ${e.message ?? ''}`
  if (level === 'client-authentication' || /authentication methods failed|ERR_BAD_AUTH/i.test(message)) {
    const how = [target.privateKey ? 'key PPK_PATH' : '', target.password !== undefined ? 'password' : ''].filter(Boolean).join(' and ') || 'no credentials'
    return new SftpError('ANCH_ERR_SFTP_AUTH', `${where}: authentication failed for user ${JSON.stringify(target.username)} (tried ${how}); check the credentials`)
  }
  const rawCode = (raw as { code?: unknown } | undefined)?.code
  const code = typeof rawCode === 'string' ? rawCode : typeof e.code === 'string' ? e.code : undefined
  const out = new SftpError('ANCH_ERR_SFTP_CONNECT', `${where}: cannot open an SFTP session${code ? ` (${code})` : ''}`, { cause: err })
  ;(out as { transientCode?: string }).transientCode = code ?? 'CONNECT'
  return out
}
