import type { Readable, Writable } from 'node:stream'

/** One object in a datastore listing. */
export interface DatastoreEntry {
  /** Path relative to the datastore root, `/`-separated. */
  readonly path: string
  readonly size: number
  readonly mtime: Date
  /**
   * The object's whole content, when the backend keeps a copy of small documents with the listing (the blob
   * datastore does, for objects written with `inline`). Optional: absent, readers read the object. It is as
   * untrusted as the object itself: validate it exactly as the object would be.
   */
  readonly inline?: Buffer
}

/** Hints of {@link Datastore.write}; a backend may ignore any of them. */
export interface WriteOptions {
  /**
   * A small document read through listings (a summary): a backend that can keep a copy with the listing does, so a
   * reader of many such objects needs one listing instead of one read each. The filesystem ignores it.
   */
  readonly inline?: boolean
}

/** Who holds a run lock. */
export interface LockInfo {
  readonly host: string
  readonly pid: number
  readonly since: string
  readonly heartbeat: string
  readonly token: string
  /**
   * The pid of the `anchovy start` process supervising the holder (`-t`), when there is one: the process a user
   * signals to stop the run. `pid` is the process that holds the lock (what staleness checks look at).
   */
  readonly supervisor_pid?: number
}

/** Who takes a lock besides this process. */
export interface LockOwner {
  /** The supervising `anchovy start` process, recorded as `supervisor_pid`. */
  readonly supervisorPid?: number
}

/** A held run lock: renewed by the runtime while the run lives, released at exit. */
export interface DatastoreLock {
  readonly info: LockInfo
  /** Refreshes the heartbeat; throws when the lock was lost to another holder. */
  renew(): Promise<void>
  release(): Promise<void>
}

/**
 * Storage for everything an anchovy remembers. Paths are relative, `/`-separated and already validated.
 * Every write is atomic: readers see the old object or the new one, never a part.
 */
export interface Datastore {
  /** Where the datastore lives, without credentials (for logs). */
  readonly url: string
  /** The whole object, or undefined when it does not exist. */
  read(path: string): Promise<Buffer | undefined>
  /** A stream of the object's bytes; rejects when it does not exist. */
  readStream(path: string): Promise<Readable>
  /** Writes (replaces) an object atomically. */
  write(path: string, data: string | Uint8Array, options?: WriteOptions): Promise<void>
  /**
   * A stream that writes an object: it becomes visible atomically when the stream finishes;
   * destroying the stream discards it.
   */
  writeStream(path: string): Writable
  /** Creates an object only if none exists at `path`; false when one already does (two writers never both win). */
  createExclusive(path: string, data: string | Uint8Array): Promise<boolean>
  /** Every object under the folder `prefix` (recursively), sorted by path. */
  list(prefix: string): Promise<DatastoreEntry[]>
  /** Deletes an object; a missing object is not an error. */
  delete(path: string): Promise<void>
  /**
   * Takes the run lock at `path`. Throws AnchovyLocked naming the holder when a live holder has it; a holder
   * whose heartbeat is older than `ttlMs` (or that provably died) is taken over.
   */
  lock(path: string, ttlMs: number, owner?: LockOwner): Promise<DatastoreLock>
  /** Reads the lock at `path` without taking it. */
  readLock(path: string): Promise<LockInfo | undefined>
  /**
   * Removes what interrupted writes left under the folder `prefix` (temporary files, uncommitted blocks); called
   * under the run lock for the anchovy's own folders. Optional: backends whose writes leave nothing omit it.
   */
  sweep?(prefix: string): Promise<number>
  close(): Promise<void>
}

/** How a datastore URL or path becomes a Datastore (plugins register one, e.g. `az://`). */
export interface DatastoreFactory {
  /** True when this factory handles `location`. */
  accepts(location: string): boolean
  open(location: string): Promise<Datastore>
}

/** The LockInfo fields that record `owner`. */
export function lockOwner(owner: LockOwner | undefined): Pick<LockInfo, 'supervisor_pid'> {
  return owner?.supervisorPid && owner.supervisorPid > 0 ? { supervisor_pid: owner.supervisorPid } : {}
}
