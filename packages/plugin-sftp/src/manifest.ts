import type { RemoteFile } from './remote-fs.js'

/** What the manifest remembers of one file taken. */
export type ManifestEntry = {
  readonly size: number
  /** Epoch milliseconds, as the server reported it. */
  readonly mtime: number
  readonly rows: number
  readonly taken_at: string
}

/**
 * Every file taken for one table, by path relative to the connection base (a checkpoint value). Always an
 * `Object.create(null)` object read with own-property checks: paths come from the server, and a file may be
 * called `__proto__` or `constructor`.
 */
export type Manifest = Record<string, ManifestEntry>

/** A manifest from its checkpoint value (own entries only, into a null-prototype object). */
export function readManifest(value: unknown): Manifest {
  const out = Object.create(null) as Manifest
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return out
  for (const [path, entry] of Object.entries(value)) {
    if (entry !== null && typeof entry === 'object') out[path] = entry as ManifestEntry
  }
  return out
}

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
export function selectFiles(
  listing: readonly RemoteFile[],
  manifest: Manifest,
  now: number,
  minAgeSeconds: number,
  maxFiles: number,
): Selection {
  const take: RemoteFile[] = []
  const young: RemoteFile[] = []
  let unchanged = 0
  let deferred = 0
  for (const f of listing) {
    const seen = Object.hasOwn(manifest, f.path) ? manifest[f.path] : undefined
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
  const out = Object.create(null) as Manifest
  for (const [path, entry] of Object.entries(manifest)) if (listed.has(path)) out[path] = entry
  return out
}
