import * as posix from 'node:path/posix'
import { Readable } from 'node:stream'
import type { Logger } from '@anchovies/core'
import type { SFTPWrapper } from 'ssh2'
import SftpClient from 'ssh2-sftp-client'
import { SftpError } from './errors.js'
import { fingerprint, type HostKeyPolicy } from './host-key.js'
import { isInside, outsideError, type RemoteEntry, type RemoteFs } from './remote-fs.js'

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
  /** The base folder with its links resolved (asked once per session). */
  private root: Promise<string> | undefined

  private constructor(
    private readonly client: SftpClient,
    private readonly base: string,
    private readonly timeoutMs: number,
    private readonly display: string,
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
    client.on('keyboard-interactive', ((
      _n: string,
      _i: string,
      _l: string,
      prompts: unknown[],
      finish: (answers: string[]) => void,
    ) => {
      finish(prompts.map(() => password ?? ''))
    }) as never)
    const onAbort = (): void => void client.end().catch(() => undefined)
    signal?.addEventListener('abort', onAbort, { once: true })
    const policy = target.hostKey
    // readyTimeout covers the SSH handshake only; this bounds opening the sftp channel and resolving the base too.
    let timer: NodeJS.Timeout | undefined
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(Object.assign(new Error(`no SFTP session within ${target.timeoutMs} ms`), { code: 'ETIMEDOUT' })),
        target.timeoutMs + 1000,
      )
    })
    timedOut.catch(() => undefined)
    const within = <T>(p: Promise<T>): Promise<T> => Promise.race([p, timedOut])
    try {
      await within(
        client.connect({
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
              logger.warn(
                { host: target.host, port: target.port, fingerprint: fp },
                'the sftp host key is not verified: set HOST_KEY (this fingerprint, once checked) or KNOWN_HOSTS',
              )
              return true
            }
            if (policy.fingerprints.has(fp)) return true
            rejected = fp
            return false
          },
        }),
      )
      // Without TCP_NODELAY each sequential read waits for the peer's delayed ACK (~40 ms): 100x slower.
      ;(client as unknown as { client: { setNoDelay(on: boolean): void } }).client.setNoDelay(true)
      fs = new SftpFs(client, await within(resolveBase(client, target.base)), target.timeoutMs, target.display)
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
      const timer = setTimeout(
        () => reject(Object.assign(new Error(`no answer within ${this.timeoutMs} ms`), { code: 'IDLE_TIMEOUT' })),
        this.timeoutMs,
      )
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

  async realpath(path: string): Promise<string> {
    const abs = this.abs(path)
    const real = await this.guard(() => this.client.realPath(abs))
    // ssh2-sftp-client answers '' for a missing path.
    if (!real) throw Object.assign(new Error(`no such file: ${abs}`), { code: 2, notFound: true })
    return real
  }

  /** Rejects when `path` (which must exist) resolves outside the base folder (a link placed on the server). */
  private async confine(path: string, what: string): Promise<void> {
    this.root ??= this.realpath('')
    this.root.catch(() => (this.root = undefined))
    const [root, real] = await Promise.all([this.root, this.realpath(path)])
    if (!isInside(root, real)) throw outsideError(this.display, path, what)
  }

  async stat(path: string): Promise<RemoteEntry> {
    const st = await this.guard(() => this.client.stat(this.abs(path)))
    return {
      name: posix.basename(path),
      type: st.isFile ? 'file' : st.isDirectory ? 'dir' : 'other',
      size: st.size,
      mtime: st.modifyTime,
    }
  }

  /**
   * The file's bytes from `start`, by read requests at explicit offsets (up to READ_DEPTH in flight), in order.
   */
  read(path: string, start: number): Readable {
    if (!this.alive) throw sessionLost()
    const sftp = (this.client as unknown as { sftp: SFTPWrapper | undefined }).sftp
    if (!sftp) throw sessionLost()
    // The file is confined once, before it is opened (one round trip per file, not per chunk).
    return new PipelinedRead(sftp, this.abs(path), start, READ_CHUNK, READ_DEPTH, this.confine(path, 'reading'))
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
    // The target folder exists (mkdirp ran): it must not lead out of the base through a link.
    await this.confine(posix.dirname(`/${to}`).slice(1), 'moving a file to')
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

/** Bytes per SFTP read request: OpenSSH answers up to 255 KiB, every server at least 32 KiB. */
const READ_CHUNK = 64 * 1024
/**
 * Most read requests in flight per file. Measured on loopback (2 cores): 8 makes the plugin alone (download +
 * parse) ~25 % faster, but a run into the datastore is no faster (CPU-bound) and its peak RSS grows by 40–50 MB
 * (answers arriving while the main thread encodes rows keep ssh2's socket buffers alive past young-generation
 * GCs, until a full GC): 2 already costs 30 MB. One request at a time keeps the peak under 150 MB. Raise it for
 * high-latency links, where each round trip otherwise costs a full RTT per 64 KiB.
 */
const READ_DEPTH = 1

/** One read request: the bytes at `pos`, `len` long, filled in `buf` (more than one answer on short reads). */
interface Slot {
  readonly pos: number
  readonly len: number
  readonly buf: Buffer
  got: number
  done: boolean
  eof: boolean
}

/**
 * A file read with up to `depth` requests of `chunk` bytes in flight at explicit offsets, pushed in order.
 * Back-pressure: no request is sent while `depth` chunks are in flight or waiting to be consumed. A short
 * answer is completed by another request for the rest; an empty answer (or EOF status) ends the file.
 * Destroying it closes the handle without waiting for the answer (which never comes on a dead session).
 */
class PipelinedRead extends Readable {
  private handle: Buffer | undefined
  private next: number
  private readonly slots: Slot[] = []
  private ended = false
  private wanted = false
  /** Requests to keep in flight now (1 to `depth`). */
  private target = 1
  /** Buffers of answered requests, for the next ones. */
  private readonly spare: Buffer[] = []

  constructor(
    private readonly sftp: SFTPWrapper,
    private readonly path: string,
    start: number,
    private readonly chunk: number,
    private readonly depth: number,
    private readonly before: Promise<void>,
  ) {
    super({ highWaterMark: chunk })
    this.next = start
    before.catch(() => undefined)
  }

  override _construct(callback: (err?: Error | null) => void): void {
    this.before.then(
      () => this.open(callback),
      (err: Error) => callback(err),
    )
  }

  private open(callback: (err?: Error | null) => void): void {
    if (this.destroyed) return callback()
    try {
      this.sftp.open(this.path, 'r', (err, handle) => {
        if (err) return callback(err)
        if (this.destroyed) {
          this.closeHandle(handle)
          return callback()
        }
        this.handle = handle
        callback()
      })
    } catch (err) {
      callback(err as Error)
    }
  }

  override _read(): void {
    this.wanted = true
    // Read ahead only as far as the consumer needs: deeper while it waits for the network, shallower while
    // answers wait for it. Answers kept waiting while the main thread is busy outlive young-generation GCs (with
    // ssh2's socket buffers), and a deep pipeline behind a slow consumer then costs ~50 MB of RSS for no speed.
    const head = this.slots[0]
    if (head && !head.done) this.target = Math.min(this.depth, this.target + 1)
    else if (head) this.target = Math.max(1, this.target - 1)
    this.flush()
    this.fill()
  }

  /** Sends requests until `target` are in flight or waiting. */
  private fill(): void {
    while (!this.ended && !this.destroyed && this.slots.length < this.target) {
      const slot: Slot = {
        pos: this.next,
        len: this.chunk,
        buf: this.spare.pop() ?? Buffer.allocUnsafe(this.chunk),
        got: 0,
        done: false,
        eof: false,
      }
      this.next += this.chunk
      this.slots.push(slot)
      this.request(slot)
    }
  }

  private request(slot: Slot): void {
    try {
      this.sftp.read(this.handle!, slot.buf, slot.got, slot.len - slot.got, slot.pos + slot.got, (err, nb) => {
        if (this.destroyed || this.ended) return
        if (err) return void this.destroy(err)
        if (!nb) slot.eof = true
        else {
          slot.got += nb
          // A short answer in the middle of the file: ask for the rest (EOF then answers empty).
          if (slot.got < slot.len) return this.request(slot)
        }
        slot.done = true
        if (slot === this.slots[0] && this.wanted) {
          this.flush()
          this.fill()
        }
      })
    } catch (err) {
      this.destroy(err as Error)
    }
  }

  /** Pushes the finished chunks at the head, in order, while the consumer wants more. */
  private flush(): void {
    const slots = this.slots
    while (this.wanted && slots.length && slots[0]!.done) {
      const slot = slots.shift()!
      // A copy (consumed at once), and the request's buffer is reused: a buffer per chunk that waits in the
      // pipeline may be promoted to the old generation, where they pile up until a full GC.
      if (slot.got) this.wanted = this.push(Buffer.from(slot.buf.subarray(0, slot.got)))
      this.spare.push(slot.buf)
      if (slot.eof) {
        this.ended = true
        slots.length = 0
        this.closeHandle(this.handle)
        this.handle = undefined
        this.push(null)
        return
      }
    }
  }

  private closeHandle(handle: Buffer | undefined): void {
    if (!handle) return
    try {
      this.sftp.close(handle, () => undefined)
    } catch {
      // The session is gone: so is the handle.
    }
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.ended = true
    this.slots.length = 0
    this.closeHandle(this.handle)
    this.handle = undefined
    callback(err)
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
function classify(
  err: unknown,
  raw: (Error & { level?: string }) | undefined,
  rejectedKey: string | undefined,
  target: SftpTarget,
): Error {
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
    const how =
      [target.privateKey ? 'key PPK_PATH' : '', target.password !== undefined ? 'password' : '']
        .filter(Boolean)
        .join(' and ') || 'no credentials'
    return new SftpError(
      'ANCH_ERR_SFTP_AUTH',
      `${where}: authentication failed for user ${JSON.stringify(target.username)} (tried ${how}); check the credentials`,
    )
  }
  const rawCode = (raw as { code?: unknown } | undefined)?.code
  const code = typeof rawCode === 'string' ? rawCode : typeof e.code === 'string' ? e.code : undefined
  const out = new SftpError(
    'ANCH_ERR_SFTP_CONNECT',
    `${where}: cannot open an SFTP session${code ? ` (${code})` : ''}`,
    { cause: err },
  )
  ;(out as { transientCode?: string }).transientCode = code ?? 'CONNECT'
  return out
}
