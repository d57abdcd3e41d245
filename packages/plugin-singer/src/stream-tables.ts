import type { ColumnType, Table } from '@anchovies/core'
import type { StreamShape } from './json-schema.js'

/** A table name for a stream name: characters a datastore path cannot hold become `_`. */
export function tableName(stream: string): string {
  let name = stream
    .replace(/[^A-Za-z0-9_\-.]/g, '_')
    .replace(/\.{2,}/g, '_')
    .slice(0, 128)
  if (!/^[A-Za-z0-9_]/.test(name)) name = `_${name.slice(0, 127)}`
  return name
}

/** A table whose column, key and property maps this plugin owns (it updates them on schema changes). */
export type MutableTable = Table & {
  columns: Record<string, ColumnType>
  uniqueBy: string[]
  properties: Record<string, unknown>
}

/** An empty table named `name` that this plugin may update. */
export function newTable(name: string): MutableTable {
  return {
    name,
    namespace: null,
    columns: Object.create(null) as Record<string, ColumnType>,
    uniqueBy: [],
    setBy: [],
    sortBy: [],
    deletedTtl: null,
    dataChangeTimestampField: null,
    properties: Object.create(null) as Record<string, unknown>,
  }
}

/** Copies a table into one this plugin may update (config settings stay as given). */
export function ownTable(t: Table): MutableTable {
  return {
    ...t,
    columns: Object.assign(Object.create(null) as Record<string, ColumnType>, t.columns),
    uniqueBy: [...t.uniqueBy],
    properties: Object.assign(Object.create(null) as Record<string, unknown>, t.properties),
  }
}

/**
 * Applies a stream's SCHEMA to its table: columns from the JSON Schema (earlier columns stay: rows with them
 * exist), `key_properties` as `unique_by` and `bookmark_properties`, unless config.yaml set them. True when the
 * table's record changed.
 */
export function applySchema(
  table: MutableTable,
  stream: string,
  shape: StreamShape,
  keys: readonly string[],
  bookmarks: readonly string[],
  config: Table | undefined,
): boolean {
  const before = JSON.stringify([table.columns, table.uniqueBy, table.properties])
  for (const [col, type] of Object.entries(shape.columns)) {
    if (config && Object.hasOwn(config.columns, col)) continue
    table.columns[col] = type
  }
  if (!config?.uniqueBy.length && keys.length) table.uniqueBy = [...keys]
  table.properties.singer_stream = stream
  if (bookmarks.length) table.properties.singer_bookmark_properties = [...bookmarks]
  return JSON.stringify([table.columns, table.uniqueBy, table.properties]) !== before
}

/** The table settings config.yaml gave (the keys a user sets to override the tap's). */
export function pick(t: Table): Partial<Table> {
  return {
    ...(t.uniqueBy.length ? { uniqueBy: t.uniqueBy } : {}),
    ...(t.setBy.length ? { setBy: t.setBy } : {}),
    ...(t.sortBy.length ? { sortBy: t.sortBy } : {}),
    ...(t.deletedTtl !== null ? { deletedTtl: t.deletedTtl } : {}),
    ...(t.dataChangeTimestampField !== null ? { dataChangeTimestampField: t.dataChangeTimestampField } : {}),
  }
}
