import { constants as fsConstants } from 'node:fs'
import * as fsp from 'node:fs/promises'
import * as nodePath from 'node:path'
import { Readable } from 'node:stream'
import { SftpError } from './errors.js'

/** One directory entry as the glob walker sees it. */
export interface RemoteEntry {
  readonly name: string
  readonly type: 'file' | 'dir' | 'link' | 'other'
  readonly size: number
  /** Modification time in epoch milliseconds (whole seconds on SFTP). */
  readonly mtime: number
}

/** A file matched by a table's `path`. */
export interface RemoteFile {
  /** Path relative to the connection base, `/`-separated, no leading slash. */
  readonly path: string
  readonly size: number
  readonly mtime: number
}

/** The operations the downloader needs from a file server; paths are relative to the connection base. */
export interface RemoteFs {
  /** The entries of a folder; rejects with `notFound` set when the folder does not exist. */
  list(dir: string): Promise<RemoteEntry[]>
  /** Size, mtime and type (following links); rejects with `notFound` set when missing. */
  stat(path: string): Promise<RemoteEntry>
  /** The absolute path on the server with every link resolved (`''` = the base); not confined. */
  realpath(path: string): Promise<string>
  /** The file's bytes from `start`. */
  read(path: string, start: number): Readable
  /** Calls `onLost` when the session dies (SFTP); returns the unsubscribe function. */
  watch?(onLost: (err: Error) => void): () => void
  delete(path: string): Promise<void>
  /** Renames without overwriting: rejects when `to` exists. */
  rename(from: string, to: string): Promise<void>
  /** Creates a folder and its parents. */
  mkdirp(dir: string): Promise<void>
  close(): Promise<void>
}

/** True when `err` says the path does not exist (local ENOENT or SFTP status 2). */
export function isNotFound(err: unknown): boolean {
  const e = err as { code?: unknown; notFound?: boolean } | undefined
  return e?.notFound === true || e?.code === 'ENOENT' || e?.code === 2
}

/** True when the absolute `real` path is `root` or below it (both `/`-separated, without a trailing slash). */
export function isInside(root: string, real: string): boolean {
  if (real === root) return true
  return real.startsWith(root.endsWith('/') ? root : `${root}/`)
}

/** The error for a path that leads out of the connection folder through a symbolic link. */
export function outsideError(display: string, path: string, what: string): SftpError {
  return new SftpError(
    'ANCH_ERR_SFTP_PATH',
    `${display}: ${what} /${path}: it leads outside the connection folder (through a symbolic link); refused`,
  )
}

/**
 * A local folder with the same semantics as an SFTP server (`file:///path` or a plain path). Every path is
 * confined to the folder: links are followed only while they stay inside it (checked on the real path, and for
 * reads on the file actually opened), so a link to `/etc/passwd` is never read and `after: move:` through a link
 * never moves a file out of the folder.
 */
export class LocalFs implements RemoteFs {
  private root: string | undefined

  constructor(private readonly base: string) {}

  private abs(path: string): string {
    return nodePath.join(this.base, ...path.split('/').filter(Boolean))
  }

  /** The base folder with its links resolved. */
  private async realBase(): Promise<string> {
    this.root ??= await fsp.realpath(this.base)
    return this.root
  }

  /** The real path of `path` (which must exist), checked to be inside the base. */
  private async confined(path: string, what: string): Promise<string> {
    const root = await this.realBase()
    const real = await fsp.realpath(this.abs(path))
    if (!isInside(root, real)) throw outsideError(`file://${this.base}`, path, what)
    return real
  }

  /** The real path of the folder holding `path`, checked to be inside the base, joined with the last name. */
  private async confinedEntry(path: string, what: string): Promise<string> {
    const parts = path.split('/').filter(Boolean)
    const name = parts.pop()
    if (name === undefined) throw outsideError(`file://${this.base}`, path, what)
    return nodePath.join(await this.confined(parts.join('/'), what), name)
  }

  async realpath(path: string): Promise<string> {
    return fsp.realpath(this.abs(path))
  }

  async list(dir: string): Promise<RemoteEntry[]> {
    const real = await this.confined(dir, 'listing')
    const names = await fsp.readdir(real)
    const out: RemoteEntry[] = []
    for (const name of names) {
      try {
        const st = await fsp.lstat(nodePath.join(real, name))
        const type = st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'link' : 'other'
        out.push({ name, type, size: st.size, mtime: Math.floor(st.mtimeMs) })
      } catch (err) {
        if (!isNotFound(err)) throw err
      }
    }
    return out
  }

  async stat(path: string): Promise<RemoteEntry> {
    const st = await fsp.stat(await this.confined(path, 'reading'))
    return {
      name: nodePath.basename(path),
      type: st.isFile() ? 'file' : st.isDirectory() ? 'dir' : 'other',
      size: st.size,
      mtime: Math.floor(st.mtimeMs),
    }
  }

  read(path: string, start: number): Readable {
    return Readable.from(this.chunks(path, start), { objectMode: false })
  }

  private async *chunks(path: string, start: number): AsyncGenerator<Buffer> {
    const fh = await this.openConfined(path)
    const stream = fh.createReadStream({ start, highWaterMark: 64 * 1024 })
    try {
      for await (const chunk of stream) yield chunk as Buffer
    } finally {
      stream.destroy()
    }
  }

  /**
   * Opens a regular file and checks the file actually opened is inside the base (by its `/proc/self/fd` link, so
   * a link swapped in after the listing is caught too). O_NONBLOCK: a link to a FIFO must not block the open.
   */
  private async openConfined(path: string): Promise<fsp.FileHandle> {
    const root = await this.realBase()
    const fh = await fsp.open(this.abs(path), fsConstants.O_RDONLY | fsConstants.O_NONBLOCK)
    try {
      let real: string
      try {
        real = await fsp.readlink(`/proc/self/fd/${fh.fd}`)
      } catch {
        real = await fsp.realpath(this.abs(path))
      }
      if (!isInside(root, real)) throw outsideError(`file://${this.base}`, path, 'reading')
      if (!(await fh.stat()).isFile())
        throw new SftpError('ANCH_ERR_SFTP_PATH', `file://${this.base}: reading /${path}: not a regular file`)
      return fh
    } catch (err) {
      await fh.close()
      throw err
    }
  }

  async delete(path: string): Promise<void> {
    // rm removes a link itself, never its target; the folders on the way must stay inside the base.
    await fsp.rm(await this.confinedEntry(path, 'deleting'), { force: true })
  }

  async rename(from: string, to: string): Promise<void> {
    const source = await this.confinedEntry(from, 'moving')
    const target = await this.confinedEntry(to, 'moving a file to')
    // Like SFTP rename: never overwrite (the caller picks a free name first; this closes most of the race).
    const exists = await fsp.lstat(target).then(
      () => true,
      () => false,
    )
    if (exists) throw Object.assign(new Error(`${to} exists`), { code: 'EEXIST' })
    await fsp.rename(source, target)
  }

  async mkdirp(dir: string): Promise<void> {
    // The deepest existing ancestor must be inside the base (a link there would take the new folders elsewhere).
    const parts = dir.split('/').filter(Boolean)
    let existing = parts.length
    for (; existing > 0; existing--) {
      const st = await fsp.lstat(this.abs(parts.slice(0, existing).join('/'))).catch(() => undefined)
      if (st) break
    }
    const real = await this.confined(parts.slice(0, existing).join('/'), 'creating the folder')
    if (existing < parts.length) await fsp.mkdir(nodePath.join(real, ...parts.slice(existing)), { recursive: true })
  }

  async close(): Promise<void> {}
}
