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

  private constructor(
    private readonly client: SftpClient,
    private readonly base: string,
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
      if (fs) fs.alive = false
    })
    client.on('close', () => {
      if (fs) fs.alive = false
    })
    const password = target.password
    client.on('keyboard-interactive', ((_n: string, _i: string, _l: string, prompts: unknown[], finish: (answers: string[]) => void) => {
      finish(prompts.map(() => password ?? ''))
    }) as never)
    const onAbort = (): void => void client.end().catch(() => undefined)
    signal?.addEventListener('abort', onAbort, { once: true })
    const policy = target.hostKey
    try {
      await client.connect({
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
      })
      // Without TCP_NODELAY each sequential read waits for the peer's delayed ACK (~40 ms): 100x slower.
      ;(client as unknown as { client: { setNoDelay(on: boolean): void } }).client.setNoDelay(true)
      fs = new SftpFs(client, await resolveBase(client, target.base))
      return fs
    } catch (err) {
      await client.end().catch(() => undefined)
      if (signal?.aborted) throw signal.reason
      throw classify(err, lastError, rejected, target)
    } finally {
      signal?.removeEventListener('abort', onAbort)
    }
  }

  private abs(path: string): string {
    return posix.join(this.base, ...path.split('/').filter(Boolean))
  }

  async list(dir: string): Promise<RemoteEntry[]> {
    const items = await this.client.list(this.abs(dir))
    return items.map((i) => ({
      name: i.name,
      type: i.type === '-' ? 'file' : i.type === 'd' ? 'dir' : i.type === 'l' ? 'link' : 'other',
      size: i.size,
      mtime: i.modifyTime,
    }))
  }

  async stat(path: string): Promise<RemoteEntry> {
    const st = await this.client.stat(this.abs(path))
    return { name: posix.basename(path), type: st.isFile ? 'file' : st.isDirectory ? 'dir' : 'other', size: st.size, mtime: st.modifyTime }
  }

  read(path: string, start: number): Readable {
    return this.client.createReadStream(this.abs(path), { start, highWaterMark: 256 * 1024 } as never) as unknown as Readable
  }

  async delete(path: string): Promise<void> {
    await this.client.delete(this.abs(path), true)
  }

  async rename(from: string, to: string): Promise<void> {
    await this.client.rename(this.abs(from), this.abs(to))
  }

  async mkdirp(dir: string): Promise<void> {
    const abs = this.abs(dir)
    if (!(await this.client.exists(abs))) await this.client.mkdir(abs, true)
  }

  async close(): Promise<void> {
    this.alive = false
    await this.client.end()
  }
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
