import { createReadStream } from 'node:fs'
import * as fsp from 'node:fs/promises'
import * as nodePath from 'node:path'
import type { Readable } from 'node:stream'

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

/** A local folder with the same semantics as an SFTP server (`file:///path` or a plain path). */
export class LocalFs implements RemoteFs {
  constructor(private readonly base: string) {}

  private abs(path: string): string {
    return nodePath.join(this.base, ...path.split('/').filter(Boolean))
  }

  async list(dir: string): Promise<RemoteEntry[]> {
    const names = await fsp.readdir(this.abs(dir))
    const out: RemoteEntry[] = []
    for (const name of names) {
      try {
        const st = await fsp.lstat(this.abs(`${dir}/${name}`))
        const type = st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'link' : 'other'
        out.push({ name, type, size: st.size, mtime: Math.floor(st.mtimeMs) })
      } catch (err) {
        if (!isNotFound(err)) throw err
      }
    }
    return out
  }

  async stat(path: string): Promise<RemoteEntry> {
    const st = await fsp.stat(this.abs(path))
    return { name: nodePath.basename(path), type: st.isFile() ? 'file' : st.isDirectory() ? 'dir' : 'other', size: st.size, mtime: Math.floor(st.mtimeMs) }
  }

  read(path: string, start: number): Readable {
    return createReadStream(this.abs(path), { start, highWaterMark: 64 * 1024 })
  }

  async delete(path: string): Promise<void> {
    await fsp.rm(this.abs(path), { force: true })
  }

  async rename(from: string, to: string): Promise<void> {
    // Like SFTP rename: never overwrite (the caller picks a free name first; this closes most of the race).
    const exists = await fsp.stat(this.abs(to)).then(() => true, () => false)
    if (exists) throw Object.assign(new Error(`${to} exists`), { code: 'EEXIST' })
    await fsp.rename(this.abs(from), this.abs(to))
  }

  async mkdirp(dir: string): Promise<void> {
    await fsp.mkdir(this.abs(dir), { recursive: true })
  }

  async close(): Promise<void> {}
}
