import { randomBytes } from 'node:crypto'
import * as fs from 'node:fs/promises'
import { hostname } from 'node:os'
import * as nodePath from 'node:path'
import { Writable, type Readable } from 'node:stream'
import { AnchoviesError, AnchovyLocked } from '../errors.js'
import { joinPath } from '../names.js'
import {
  lockOwner,
  type Datastore,
  type DatastoreEntry,
  type DatastoreLock,
  type LockInfo,
  type LockOwner,
} from './datastore.js'

/** A datastore in a local folder: atomic writes by temporary file + fsync + rename. */
export class FilesystemDatastore implements Datastore {
  readonly url: string

  constructor(readonly root: string) {
    this.url = nodePath.resolve(root)
  }

  /** The absolute file path of a datastore path (never outside the root). */
  resolve(path: string): string {
    return nodePath.join(this.url, ...joinPath(path).split('/'))
  }

  async read(path: string): Promise<Buffer | undefined> {
    try {
      return await fs.readFile(this.resolve(path))
    } catch (err) {
      if (isCode(err, 'ENOENT')) return undefined
      throw wrap(err, `reading ${path}`)
    }
  }

  async readStream(path: string): Promise<Readable> {
    const file = this.resolve(path)
    const handle = await fs.open(file, 'r').catch((err: unknown) => {
      throw wrap(err, `reading ${path}`)
    })
    return handle.createReadStream({ autoClose: true, highWaterMark: 256 * 1024 })
  }

  async write(path: string, data: string | Uint8Array): Promise<void> {
    const file = this.resolve(path)
    const tmp = tempName(file)
    try {
      await fs.mkdir(nodePath.dirname(file), { recursive: true })
      await writeSynced(tmp, data, 'wx')
      await fs.rename(tmp, file)
    } catch (err) {
      await fs.rm(tmp, { force: true })
      throw wrap(err, `writing ${path}`)
    }
  }

  writeStream(path: string): Writable {
    return new AtomicFileWriter(this.resolve(path), path)
  }

  async createExclusive(path: string, data: string | Uint8Array): Promise<boolean> {
    const file = this.resolve(path)
    const tmp = tempName(file)
    try {
      await fs.mkdir(nodePath.dirname(file), { recursive: true })
      await writeSynced(tmp, data, 'wx')
      // link() fails with EEXIST if the target exists: an atomic create-if-absent of a complete file.
      await fs.link(tmp, file)
      return true
    } catch (err) {
      if (isCode(err, 'EEXIST')) return false
      throw wrap(err, `creating ${path}`)
    } finally {
      // Never mask the error above: when the folder cannot be made (ENOTDIR), removing the temp file fails too.
      await fs.rm(tmp, { force: true }).catch(() => undefined)
    }
  }

  async list(prefix: string): Promise<DatastoreEntry[]> {
    const base = joinPath(prefix)
    const out: DatastoreEntry[] = []
    const walk = async (rel: string): Promise<void> => {
      let entries
      try {
        entries = await fs.readdir(rel ? this.resolve(rel) : this.url, { withFileTypes: true })
      } catch (err) {
        if (isCode(err, 'ENOENT') || isCode(err, 'ENOTDIR')) return
        throw wrap(err, `listing ${rel}`)
      }
      for (const e of entries) {
        if (e.name.startsWith('.')) continue // temporary files
        const child = rel ? `${rel}/${e.name}` : e.name
        if (e.isDirectory()) await walk(child)
        else if (e.isFile()) {
          const st = await fs.stat(this.resolve(child)).catch(() => undefined)
          if (st) out.push({ path: child, size: st.size, mtime: st.mtime })
        }
      }
    }
    await walk(base)
    return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
  }

  async sweep(prefix: string): Promise<number> {
    let removed = 0
    const walk = async (dir: string): Promise<void> => {
      let entries
      try {
        entries = await fs.readdir(dir, { withFileTypes: true })
      } catch {
        return
      }
      for (const e of entries) {
        const p = nodePath.join(dir, e.name)
        if (e.isDirectory()) await walk(p)
        else if (/^\..+\.tmp-[0-9a-f]{12}$/.test(e.name)) {
          await fs.rm(p, { force: true })
          removed++
        }
      }
    }
    await walk(this.resolve(prefix))
    return removed
  }

  async delete(path: string): Promise<void> {
    try {
      await fs.rm(this.resolve(path), { force: true })
    } catch (err) {
      throw wrap(err, `deleting ${path}`)
    }
  }

  async readLock(path: string): Promise<LockInfo | undefined> {
    const raw = await this.read(path)
    if (!raw) return undefined
    try {
      return JSON.parse(raw.toString('utf8')) as LockInfo
    } catch {
      // a torn lock cannot happen with atomic writes; treat garbage as a dead holder
      return {
        host: '?',
        pid: 0,
        since: new Date(0).toISOString(),
        heartbeat: new Date(0).toISOString(),
        token: raw.toString('hex'),
      }
    }
  }

  async lock(path: string, ttlMs: number, owner?: LockOwner): Promise<DatastoreLock> {
    const now = new Date().toISOString()
    const info: LockInfo = {
      host: hostname(),
      pid: process.pid,
      since: now,
      heartbeat: now,
      token: randomBytes(12).toString('hex'),
      ...lockOwner(owner),
    }
    const where = path.replace(/\/?\$lock$/, '')
    for (let attempt = 0; attempt < 3; attempt++) {
      if (await this.createExclusive(path, JSON.stringify(info))) return this.held(path, info)
      const current = await this.readLock(path)
      if (!current) continue
      if (!isStale(current, ttlMs)) throw new AnchovyLocked(current, where)
      // Take over a dead holder's lock: a takeover marker makes the check-and-replace exclusive. The marker names
      // its writer, so a marker left by a taker that died is itself recognised as stale.
      const marker = `${path}.takeover`
      if (!(await this.createExclusive(marker, JSON.stringify(info)))) {
        const other = await this.readLock(marker)
        if (!other || isStale(other, ttlMs)) await this.delete(marker)
        continue
      }
      try {
        const again = await this.readLock(path)
        if (again && again.token !== current.token) throw new AnchovyLocked(again, where)
        await this.write(path, JSON.stringify(info))
        return this.held(path, info)
      } finally {
        await this.delete(marker)
      }
    }
    const holder = await this.readLock(path)
    throw new AnchovyLocked(holder ?? info, where)
  }

  private held(path: string, info: LockInfo): DatastoreLock {
    let current = info
    return {
      get info() {
        return current
      },
      renew: async () => {
        const now = await this.readLock(path)
        if (!now || now.token !== info.token) {
          throw new AnchoviesError(
            'ANCH_ERR_LOCKED',
            `the run lock ${path} was taken over by ${now ? `${now.host} pid ${now.pid}` : 'nobody (deleted)'}`,
          )
        }
        current = { ...info, heartbeat: new Date().toISOString() }
        await this.write(path, JSON.stringify(current))
      },
      release: async () => {
        const now = await this.readLock(path)
        if (now?.token === info.token) await this.delete(path)
      },
    }
  }

  async close(): Promise<void> {}
}

/**
 * True when a lock holder is gone: its heartbeat is older than the TTL (a frozen or unreachable holder; the
 * commit record's exclusive create still fences it if it wakes up), or it ran on this host and its process is gone.
 */
export function isStale(info: LockInfo, ttlMs: number): boolean {
  if (Date.now() - Date.parse(info.heartbeat) > ttlMs) return true
  if (info.host === hostname() && info.pid > 0) {
    try {
      process.kill(info.pid, 0)
    } catch (err) {
      return isCode(err, 'ESRCH')
    }
  }
  return false
}

class AtomicFileWriter extends Writable {
  private handle: fs.FileHandle | undefined
  private readonly tmp: string
  private done = false

  constructor(
    private readonly file: string,
    private readonly label: string,
  ) {
    super({ highWaterMark: 256 * 1024 })
    this.tmp = tempName(file)
  }

  override _construct(callback: (error?: Error | null) => void): void {
    fs.mkdir(nodePath.dirname(this.file), { recursive: true })
      .then(() => fs.open(this.tmp, 'wx'))
      .then(
        (h) => {
          this.handle = h
          callback()
        },
        (err: unknown) => callback(wrap(err, `writing ${this.label}`)),
      )
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.handle!.write(chunk).then(
      () => callback(),
      (err: unknown) => callback(wrap(err, `writing ${this.label}`)),
    )
  }

  override _writev(chunks: { chunk: Buffer }[], callback: (error?: Error | null) => void): void {
    this.handle!.writev(chunks.map((c) => c.chunk)).then(
      () => callback(),
      (err: unknown) => callback(wrap(err, `writing ${this.label}`)),
    )
  }

  override _final(callback: (error?: Error | null) => void): void {
    const h = this.handle!
    h.sync()
      .then(() => h.close())
      .then(() => fs.rename(this.tmp, this.file))
      .then(
        () => {
          this.done = true
          callback()
        },
        (err: unknown) => callback(wrap(err, `writing ${this.label}`)),
      )
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (this.done) return callback(error)
    const h = this.handle
    Promise.resolve(h?.close())
      .catch(() => undefined)
      .then(() => fs.rm(this.tmp, { force: true }))
      .then(
        () => callback(error),
        () => callback(error),
      )
  }
}

async function writeSynced(file: string, data: string | Uint8Array, flag: string): Promise<void> {
  const h = await fs.open(file, flag)
  try {
    await h.writeFile(data)
    await h.sync()
  } finally {
    await h.close()
  }
}

function tempName(file: string): string {
  return nodePath.join(nodePath.dirname(file), `.${nodePath.basename(file)}.tmp-${randomBytes(6).toString('hex')}`)
}

function isCode(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: string }).code === code
}

function wrap(err: unknown, doing: string): AnchoviesError {
  if (err instanceof AnchoviesError) return err
  const code = (err as { code?: string }).code
  return new AnchoviesError(
    'ANCH_ERR_DATASTORE',
    `${doing} failed${code ? ` (${code})` : ''}: ${(err as Error).message}`,
    { cause: err },
  )
}
