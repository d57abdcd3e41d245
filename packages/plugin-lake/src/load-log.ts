import * as fs from 'node:fs/promises'
import * as nodePath from 'node:path'
import { pipeline } from 'node:stream/promises'
import { AnchoviesError, FilesystemDatastore, type Datastore } from '@anchovies/core'
import { LAKE_TYPES, type ColumnState, type LakeType } from './column-types.js'
import { META_DIR, loadPath, manifestPath, stagingDir } from './layout.js'

/** One Parquet file of a load. */
export interface LoadFile {
  /** Final path (relative to the lake root). */
  readonly path: string
  /** Where the file was written before the load committed. */
  readonly staged: string
  readonly rows: number
  readonly bytes: number
  /** `_seq` of the file's first and last rows. */
  readonly first_seq: number
  readonly last_seq: number
  /** Hive folder `key=value` of the file, if partitioned. */
  readonly partition?: string
  /** Min/max of the partition column's values in the file (text), if partitioned. */
  readonly min?: string
  readonly max?: string
}

/** A schema change a load made: a new column, or a widened type. */
export interface SchemaChange {
  readonly load: number
  readonly column: string
  readonly from: string | null
  readonly to: string
}

/** What one committed load wrote: the record under `_anchovies/loads/`, the dataset's source of truth. */
export interface LoadRecord {
  readonly format: 1
  readonly seq: number
  readonly uploader: string
  readonly session_id: string
  readonly loaded_at: string
  /** `_seq` of the load's first row; rows take consecutive values. */
  readonly first_seq: number
  readonly rows: number
  /** Ids of the upstream data files the load read (`<anchovy id>/<path>`): the ledger that makes reruns skip them. */
  readonly upstream_files: readonly string[]
  readonly files: readonly LoadFile[]
  /** The dataset's columns after this load (type names as `LAKE_TYPES`). */
  readonly columns: readonly ColumnState[]
  readonly changes: readonly SchemaChange[]
}

/** The dataset as the load records describe it (the manifest is this, written out). */
export interface DatasetState {
  readonly base: string
  /** Next load number. */
  nextLoad: number
  /** `_seq` of the next row. */
  nextSeq: number
  rows: number
  columns: ColumnState[]
  changes: SchemaChange[]
  files: LoadFile[]
  loaded: Set<string>
  /** Uploader id that owns the dataset (the first load's). */
  uploader: string | undefined
}

function corrupt(path: string, why: string): AnchoviesError {
  return new AnchoviesError(
    'ANCH_ERR_LAKE_CORRUPT',
    `lake file ${path} cannot be trusted: ${why}. Inspect it; load records are the source of truth (delete ${META_DIR}/manifest.json to rebuild it from them)`,
  )
}

/** Validates a load record read back from the lake (everything in it is untrusted). */
export function checkRecord(base: string, path: string, raw: unknown, seq: number): LoadRecord {
  const o = raw as Record<string, unknown>
  if (!o || typeof o !== 'object' || Array.isArray(o) || o.format !== 1)
    throw corrupt(path, 'not a load record of format 1')
  if (o.seq !== seq) throw corrupt(path, `it says load ${String(o.seq)}`)
  const int = (v: unknown, what: string): number => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw corrupt(path, `${what} is not a whole number`)
    return v
  }
  const str = (v: unknown, what: string): string => {
    if (typeof v !== 'string') throw corrupt(path, `${what} is not text`)
    return v
  }
  int(o.first_seq, 'first_seq')
  int(o.rows, 'rows')
  str(o.uploader, 'uploader')
  str(o.session_id, 'session_id')
  str(o.loaded_at, 'loaded_at')
  if (!Array.isArray(o.upstream_files) || !o.upstream_files.every((f) => typeof f === 'string'))
    throw corrupt(path, 'upstream_files is not a list of text')
  if (!Array.isArray(o.files)) throw corrupt(path, 'files is not a list')
  let total = 0
  for (const [i, f] of (o.files as Record<string, unknown>[]).entries()) {
    if (!f || typeof f !== 'object') throw corrupt(path, `files[${i}] is not an object`)
    const final = str(f.path, `files[${i}].path`)
    const staged = str(f.staged, `files[${i}].staged`)
    if (!inside(base, final) || final.startsWith(`${base}/${META_DIR}/`) || !final.endsWith('.parquet'))
      throw corrupt(path, `files[${i}].path is not a Parquet file of ${base}`)
    if (!inside(`${stagingDir(base)}`, staged)) throw corrupt(path, `files[${i}].staged is not in ${stagingDir(base)}`)
    total += int(f.rows, `files[${i}].rows`)
    int(f.bytes, `files[${i}].bytes`)
  }
  if (total !== o.rows) throw corrupt(path, `its files hold ${total} rows but it says ${String(o.rows)}`)
  if (!Array.isArray(o.columns)) throw corrupt(path, 'columns is not a list')
  for (const [i, c] of (o.columns as Record<string, unknown>[]).entries()) {
    if (!c || typeof c !== 'object') throw corrupt(path, `columns[${i}] is not an object`)
    str(c.name, `columns[${i}].name`)
    if (typeof c.type !== 'string' || !(LAKE_TYPES as readonly string[]).includes(c.type))
      throw corrupt(path, `columns[${i}].type is not one of ${LAKE_TYPES.join(', ')}`)
    if (typeof c.scale !== 'number' || !Number.isInteger(c.scale) || c.scale < 0 || c.scale > 38)
      throw corrupt(path, `columns[${i}].scale is not 0–38`)
  }
  if (!Array.isArray(o.changes)) throw corrupt(path, 'changes is not a list')
  return o as unknown as LoadRecord
}

/** True when `path` is a plain path strictly under folder `dir` (no `.`/`..` segments). */
function inside(dir: string, path: string): boolean {
  if (!path.startsWith(`${dir}/`)) return false
  return path
    .slice(dir.length + 1)
    .split('/')
    .every((s) => s !== '' && s !== '.' && s !== '..' && !s.includes('\\') && !s.includes('\0'))
}

/** An empty dataset. */
function emptyState(base: string): DatasetState {
  return {
    base,
    nextLoad: 1,
    nextSeq: 1,
    rows: 0,
    columns: [],
    changes: [],
    files: [],
    loaded: new Set(),
    uploader: undefined,
  }
}

/** Folds one load record into the state. */
function apply(state: DatasetState, rec: LoadRecord): void {
  state.nextLoad = rec.seq + 1
  state.nextSeq = rec.first_seq + rec.rows
  state.rows += rec.rows
  state.columns = rec.columns.map((c) => ({ name: c.name, type: c.type as LakeType, scale: c.scale }))
  state.changes.push(...rec.changes)
  state.files.push(...rec.files)
  for (const id of rec.upstream_files) state.loaded.add(id)
  state.uploader ??= rec.uploader
}

/** The manifest: the dataset as all published loads describe it (derived; rebuilt when missing). */
interface Manifest {
  readonly format: 1
  readonly published_through: number
  readonly next_seq: number
  readonly rows: number
  readonly uploader: string | undefined
  readonly columns: readonly ColumnState[]
  readonly changes: readonly SchemaChange[]
  readonly files: readonly LoadFile[]
  readonly upstream_files: readonly string[]
  readonly table: Record<string, unknown>
}

/**
 * Reads the dataset's state and finishes what an interrupted run left: loads committed but not fully published
 * are published (rolled forward, never back), staged files of loads that never committed are deleted.
 * Call under the uploader's run lock.
 */
export async function recoverDataset(
  ds: Datastore,
  base: string,
  table: Record<string, unknown>,
): Promise<DatasetState> {
  const state = emptyState(base)
  let publishedThrough = 0
  const mpath = manifestPath(base)
  const raw = await ds.read(mpath)
  if (raw) {
    let m: Manifest
    try {
      m = JSON.parse(raw.toString('utf8')) as Manifest
    } catch {
      throw corrupt(mpath, 'not JSON')
    }
    if (
      m?.format !== 1 ||
      !Number.isSafeInteger(m.published_through) ||
      !Array.isArray(m.files) ||
      !Array.isArray(m.upstream_files) ||
      !Array.isArray(m.columns)
    ) {
      throw corrupt(mpath, 'not a manifest of format 1')
    }
    // The manifest folds the records it covers; it is checked like them.
    const rec = checkRecord(
      base,
      mpath,
      {
        format: 1,
        seq: m.published_through,
        uploader: m.uploader ?? '',
        session_id: '',
        loaded_at: '',
        first_seq: 0,
        rows: m.rows,
        upstream_files: m.upstream_files,
        files: m.files,
        columns: m.columns,
        changes: m.changes,
      },
      m.published_through,
    )
    apply(state, rec)
    state.nextSeq = m.next_seq
    state.uploader = m.uploader
    publishedThrough = m.published_through
  }
  const entries = await ds.list(`${base}/${META_DIR}`)
  const loadNames = new Map<number, string>()
  const staged = new Set<string>()
  for (const e of entries) {
    const rest = e.path.slice(base.length + META_DIR.length + 2)
    const m = /^loads\/(\d{10})\.json$/.exec(rest)
    if (m) loadNames.set(Number(m[1]), e.path)
    else if (rest.startsWith('staging/')) staged.add(e.path)
  }
  const pending = [...loadNames.keys()].filter((s) => s > publishedThrough).sort((a, b) => a - b)
  const keep = new Set<string>()
  let expect = publishedThrough + 1
  for (const seq of pending) {
    const path = loadNames.get(seq)!
    if (seq !== expect) throw corrupt(path, `load ${expect} is missing before it`)
    expect++
    const body = await ds.read(path)
    if (!body) throw corrupt(path, 'it vanished while being read')
    let parsed: unknown
    try {
      parsed = JSON.parse(body.toString('utf8'))
    } catch {
      throw corrupt(path, 'not JSON')
    }
    const rec = checkRecord(base, path, parsed, seq)
    for (const f of rec.files) {
      keep.add(f.staged)
      if (staged.has(f.staged)) await publish(ds, f.staged, f.path)
      else if (!(await exists(ds, f.path))) throw corrupt(path, `its file ${f.path} is neither published nor staged`)
    }
    apply(state, rec)
    publishedThrough = seq
  }
  // Staged files no committed load names: a run that died before its commit.
  for (const path of staged) if (!keep.has(path)) await ds.delete(path)
  // A kill in the middle of a streamed write leaves its temporary object, which listings do not show: in staging
  // (writing a part), or beside a published file when the kill hit a publish, which leaves its load pending.
  await ds.sweep?.(pending.length ? base : stagingDir(base))
  if (pending.length) await writeManifest(ds, state, publishedThrough, table)
  return state
}

/** Whether an object exists (listing its folder: no download). */
async function exists(ds: Datastore, path: string): Promise<boolean> {
  const dir = path.slice(0, path.lastIndexOf('/'))
  return (await ds.list(dir)).some((e) => e.path === path)
}

/** Commits a load: its record is created exclusively (two writers never both win), then its files published. */
export async function commitLoad(
  ds: Datastore,
  state: DatasetState,
  rec: LoadRecord,
  table: Record<string, unknown>,
  beforePublish?: () => Promise<void> | void,
): Promise<void> {
  const path = loadPath(state.base, rec.seq)
  if (!(await ds.createExclusive(path, `${JSON.stringify(rec, null, 1)}\n`))) {
    throw new AnchoviesError(
      'ANCH_ERR_LAKE_CONFLICT',
      `load ${rec.seq} of ${state.base} was committed by another writer meanwhile: only one lake.ParquetUploader may write a dataset; nothing of this load became visible, rerun to load it after theirs`,
    )
  }
  await beforePublish?.()
  for (const f of rec.files) await publish(ds, f.staged, f.path)
  apply(state, rec)
  await writeManifest(ds, state, rec.seq, table)
}

/** Moves a staged file to its final name: a rename on a folder, a copy then delete elsewhere. */
async function publish(ds: Datastore, staged: string, final: string): Promise<void> {
  if (ds instanceof FilesystemDatastore) {
    const to = ds.resolve(final)
    await fs.mkdir(nodePath.dirname(to), { recursive: true })
    try {
      await fs.rename(ds.resolve(staged), to)
    } catch (err) {
      throw new AnchoviesError('ANCH_ERR_LAKE_WRITE', `publishing ${final}: ${(err as Error).message}`, { cause: err })
    }
    return
  }
  await pipeline(await ds.readStream(staged), ds.writeStream(final))
  await ds.delete(staged)
}

async function writeManifest(
  ds: Datastore,
  state: DatasetState,
  publishedThrough: number,
  table: Record<string, unknown>,
): Promise<void> {
  const m: Manifest = {
    format: 1,
    published_through: publishedThrough,
    next_seq: state.nextSeq,
    rows: state.rows,
    uploader: state.uploader,
    columns: state.columns,
    changes: state.changes,
    files: state.files,
    upstream_files: [...state.loaded],
    table,
  }
  await ds.write(manifestPath(state.base), `${JSON.stringify(m, null, 1)}\n`)
}
