import type { JsonValue } from '@anchovies/core'
import type { ReadPosition } from './csv-rows.js'
import { SftpError } from './errors.js'

/**
 * Where a partly read file goes on (a checkpoint value, committed with the rows read before it): the file
 * version (path, size, mtime), the position of the next record, and the rows taken from it so far.
 */
export type ResumePoint = ReadPosition & {
  readonly path: string
  readonly size: number
  /** Epoch milliseconds, as the server reported it. */
  readonly mtime: number
  /** Rows taken from the file before `offset` (for the manifest entry). `offset` counts decompressed bytes for gzip. */
  readonly rows: number
}

/** The checkpoint key holding a table's resume point. */
export function resumeKey(table: string): string {
  return `sftp.${table}.resume`
}

/** The checkpoint value of a resume point (plain JSON). */
export function resumeValue(
  file: { path: string; size: number; mtime: number },
  position: ReadPosition,
  rows: number,
): JsonValue {
  return {
    path: file.path,
    size: file.size,
    mtime: file.mtime,
    offset: position.offset,
    line: position.line,
    columns: [...position.columns],
    rows,
  }
}

const count = (v: unknown, min: number): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= min

/**
 * A resume point from its checkpoint value (undefined when there is none). Read back from the datastore, so
 * checked: a value that does not describe a position inside its file is an error, never silently a restart
 * (which would deliver the rows committed before it twice).
 */
export function readResume(value: unknown, table: string): ResumePoint | undefined {
  if (value === undefined || value === null) return undefined
  const v = value as Record<string, unknown>
  const ok =
    typeof value === 'object' &&
    !Array.isArray(value) &&
    typeof v.path === 'string' &&
    v.path !== '' &&
    count(v.size, 0) &&
    typeof v.mtime === 'number' &&
    Number.isFinite(v.mtime) &&
    count(v.offset, 0) &&
    count(v.line, 1) &&
    count(v.rows, 0) &&
    Array.isArray(v.columns) &&
    v.columns.length > 0 &&
    v.columns.every((c) => typeof c === 'string')
  if (!ok) {
    throw new SftpError(
      'ANCH_ERR_SFTP_RESUME',
      `checkpoint ${resumeKey(table)} is not a valid resume point ({path, size, mtime, offset, line ≥ 1, columns, rows}); inspect it with anchovy checkpoint get, or delete it to read the file again from the start (its committed rows would then be delivered twice)`,
    )
  }
  return {
    path: v.path as string,
    size: v.size as number,
    mtime: v.mtime as number,
    offset: v.offset as number,
    line: v.line as number,
    columns: v.columns as string[],
    rows: v.rows as number,
  }
}
