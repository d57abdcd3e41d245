import { AnchoviesError, type SettingSpec, type Table } from '@anchovies/core'
import { COMPRESSIONS, type Compression } from './compression.js'
import { partitionSpec } from './layout.js'
import type { LoadOptions } from './load-writer.js'

/** The settings `lake.ParquetUploader` adds to `anchovy start` (env, config.yaml `config:`); tables may override them. */
export const LAKE_SETTINGS: readonly SettingSpec[] = [
  {
    key: 'lake_compression',
    env: ['ACHVY_LAKE_COMPRESSION'],
    type: 'string',
    choices: COMPRESSIONS,
    default: 'snappy',
    description: 'lake: Parquet compression codec, snappy or zstd (table key: compression)',
  },
  {
    key: 'lake_row_group_rows',
    env: ['ACHVY_LAKE_ROW_GROUP_ROWS'],
    type: 'int',
    default: 20_000,
    min: 1,
    description:
      'lake: rows per Parquet row group, also the rows held in memory at a time: the memory knob for wide tables (table key: row_group_rows)',
  },
  {
    key: 'lake_file_max_rows',
    env: ['ACHVY_LAKE_FILE_MAX_ROWS'],
    type: 'int',
    default: 5_000_000,
    min: 1,
    description: 'lake: start a new file after this many rows (table key: file_max_rows)',
  },
  {
    key: 'lake_file_max_bytes',
    env: ['ACHVY_LAKE_FILE_MAX_BYTES'],
    type: 'int',
    default: 512 * 1024 * 1024,
    min: 1,
    description:
      'lake: start a new file once a file holds this many compressed bytes, checked after each row group (table key: file_max_bytes)',
  },
  {
    key: 'lake_max_open_files',
    env: ['ACHVY_LAKE_MAX_OPEN_FILES'],
    type: 'int',
    default: 32,
    min: 1,
    max: 1000,
    description:
      'lake: partition files written at once per table; past it the least recently used is finished (a partition may then get several files per load)',
  },
]

const TABLE_KEYS: Readonly<Record<string, string>> = {
  compression: 'lake_compression',
  row_group_rows: 'lake_row_group_rows',
  file_max_rows: 'lake_file_max_rows',
  file_max_bytes: 'lake_file_max_bytes',
}

/** How a table's loads are written: the run settings, overridden by the table's own keys. */
export function loadOptions(table: Table, settings: Readonly<Record<string, unknown>>): LoadOptions {
  const pick = (key: string): unknown => {
    const setting = TABLE_KEYS[key]!
    return Object.hasOwn(table.properties, key) ? table.properties[key] : settings[setting]
  }
  const positive = (key: string, fallback: number): number => {
    const v = pick(key) ?? fallback
    const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1) {
      throw new AnchoviesError(
        'ANCH_ERR_CONFIG',
        `tbls.${table.name}.${key}: expected a whole number of at least 1, got ${JSON.stringify(v)?.slice(0, 40)}`,
      )
    }
    return n
  }
  const compression = pick('compression') ?? 'snappy'
  if (typeof compression !== 'string' || !(COMPRESSIONS as readonly string[]).includes(compression.toLowerCase())) {
    throw new AnchoviesError(
      'ANCH_ERR_CONFIG',
      `tbls.${table.name}.compression: expected one of ${COMPRESSIONS.join(', ')}, got ${JSON.stringify(compression)?.slice(0, 40)}`,
    )
  }
  return {
    compression: compression.toLowerCase() as Compression,
    rowGroupRows: positive('row_group_rows', 20_000),
    fileMaxRows: positive('file_max_rows', 5_000_000),
    fileMaxBytes: positive('file_max_bytes', 512 * 1024 * 1024),
    maxOpenFiles: Number(settings.lake_max_open_files ?? 32),
    partition: partitionSpec(table, undefined),
    declared: table.columns,
  }
}
