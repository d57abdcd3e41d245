import type { RemoteFile } from './remote-fs.js'

/** What the manifest remembers of one file taken. */
export type ManifestEntry = {
  readonly size: number
  /** Epoch milliseconds, as the server reported it. */
  readonly mtime: number
  readonly rows: number
  readonly taken_at: string
}

/** Every file taken for one table, by path relative to the connection base (a checkpoint value). */
export type Manifest = Record<string, ManifestEntry>

/** The checkpoint key holding a table's manifest. */
export function manifestKey(table: string): string {
  return `sftp.${table}.manifest`
}

/** Which listed files to take now. */
export interface Selection {
  /** New or changed files old enough, in (mtime, path) order, at most `maxFiles`. */
  readonly take: RemoteFile[]
  /** Files already taken with the same size and mtime. */
  readonly unchanged: number
  /** New or changed files younger than `min_age` (left for a later run). */
  readonly young: RemoteFile[]
  /** New or changed files beyond `max_files` (left for the next batch). */
  readonly deferred: number
}

/**
 * Picks the files to take: those not in the manifest, or whose size or mtime changed since they were taken,
 * unchanged for at least `minAgeSeconds`. `listing` must be in (mtime, path) order.
 */
export function selectFiles(listing: readonly RemoteFile[], manifest: Manifest, now: number, minAgeSeconds: number, maxFiles: number): Selection {
  const take: RemoteFile[] = []
  const young: RemoteFile[] = []
  let unchanged = 0
  let deferred = 0
  for (const f of listing) {
    const seen = manifest[f.path]
    if (seen && seen.size === f.size && seen.mtime === f.mtime) {
      unchanged++
      continue
    }
    if (now - f.mtime < minAgeSeconds * 1000) young.push(f)
    else if (maxFiles > 0 && take.length >= maxFiles) deferred++
    else take.push(f)
  }
  return { take, unchanged, young, deferred }
}

/** The manifest without files that are no longer listed (deleted, moved away), so it does not grow forever. */
export function prune(manifest: Manifest, listing: readonly RemoteFile[]): Manifest {
  const listed = new Set(listing.map((f) => f.path))
  const out: Manifest = {}
  for (const [path, entry] of Object.entries(manifest)) if (listed.has(path)) out[path] = entry
  return out
}
