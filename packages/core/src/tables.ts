import { COLUMN_TYPES, type ColumnType, type SortKey, type Table } from './types.js'
import { nameProblem } from './names.js'

const KNOWN_KEYS = new Set(['name', 'namespace', 'columns', 'cols', 'unique_by', 'set_by', 'sort_by', 'deleted_ttl', 'data_change_timestamp_field'])

/** Builds a table from a `tbls.<name>` map (or a `$tables/<name>.json` record); problems are pushed to `problems`. */
export function parseTable(
  name: string,
  raw: unknown,
  where: string,
  problems: string[],
  namespace: string | null = null,
): Table {
  const at = `${where}: tbls.${name}`
  const p = nameProblem('table name', name)
  if (p) problems.push(`${at}: ${p}`)
  const obj: Record<string, unknown> = raw == null ? {} : typeof raw === 'object' && !Array.isArray(raw) ? (raw as Record<string, unknown>) : {}
  if (raw != null && obj !== raw) problems.push(`${at}: must be a map of settings`)

  const columns: Record<string, ColumnType> = {}
  const rawCols = obj.columns ?? obj.cols
  if (typeof rawCols === 'string') {
    for (const part of splitList(rawCols)) {
      const [col, type] = part.split(/\s+/)
      addColumn(col ?? '', type ?? 'str')
    }
  } else if (rawCols && typeof rawCols === 'object' && !Array.isArray(rawCols)) {
    for (const [col, type] of Object.entries(rawCols)) addColumn(col, String(type))
  } else if (rawCols != null) {
    problems.push(`${at}.columns: must be a map of column name to type`)
  }
  function addColumn(col: string, type: string): void {
    const t = type === 'decimal' || type === 'bigint' ? (type === 'bigint' ? 'int' : 'float') : type === 'json' ? 'object' : type
    if (!(COLUMN_TYPES as readonly string[]).includes(t)) {
      problems.push(`${at}.columns.${col}: unknown type ${JSON.stringify(type)} (use one of ${COLUMN_TYPES.join(', ')})`)
      return
    }
    columns[col] = t as ColumnType
  }

  const list = (key: string): string[] => {
    const v = obj[key]
    if (v == null || v === '') return []
    if (typeof v === 'string') return splitList(v)
    if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v.map((x) => x.trim()).filter(Boolean)
    problems.push(`${at}.${key}: must be a comma-separated string or a list of column names`)
    return []
  }
  const sortBy: SortKey[] = list('sort_by').map((c) =>
    c.startsWith('-') ? { column: c.slice(1).trim(), descending: true } : { column: c.replace(/^\+/, ''), descending: false },
  )
  let deletedTtl: number | null = null
  if (obj.deleted_ttl != null) {
    const n = Number(obj.deleted_ttl)
    if (!Number.isFinite(n)) problems.push(`${at}.deleted_ttl: must be a number of seconds`)
    else deletedTtl = n < 0 ? null : n
  }
  const dctf = obj.data_change_timestamp_field
  const properties: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(obj)) if (!KNOWN_KEYS.has(k)) properties[k] = v
  const ns = typeof obj.namespace === 'string' && obj.namespace ? obj.namespace : namespace
  return {
    name,
    namespace: ns,
    columns,
    uniqueBy: list('unique_by'),
    setBy: list('set_by'),
    sortBy,
    deletedTtl,
    dataChangeTimestampField: typeof dctf === 'string' && dctf ? dctf : null,
    properties,
  }
}

/** The table's qualified name: `<namespace>.<name>` for upstream tables, else the bare name. */
export function qualifiedName(table: Table): string {
  return table.namespace ? `${table.namespace}.${table.name}` : table.name
}

/** Serialises a table in the `$tables/<name>.json` format shared with the Python implementation. */
export function tableRecord(table: Table): Record<string, unknown> {
  return {
    name: table.name,
    namespace: table.namespace,
    cols: Object.entries(table.columns).map(([c, t]) => `${c} ${t}`).join(', '),
    unique_by: table.uniqueBy.join(', '),
    set_by: table.setBy.join(', '),
    sort_by: table.sortBy.map((s) => (s.descending ? `-${s.column}` : s.column)).join(', '),
    deleted_ttl: table.deletedTtl,
    data_change_timestamp_field: table.dataChangeTimestampField,
    ...table.properties,
  }
}

/** Overlays `over` onto `base`: every setting `over` gives wins; columns and properties merge key by key. */
export function mergeTables(base: Table, over: Table): Table {
  return {
    name: base.name,
    namespace: over.namespace ?? base.namespace,
    columns: { ...base.columns, ...over.columns },
    uniqueBy: over.uniqueBy.length ? over.uniqueBy : base.uniqueBy,
    setBy: over.setBy.length ? over.setBy : base.setBy,
    sortBy: over.sortBy.length ? over.sortBy : base.sortBy,
    deletedTtl: over.deletedTtl ?? base.deletedTtl,
    dataChangeTimestampField: over.dataChangeTimestampField ?? base.dataChangeTimestampField,
    properties: { ...base.properties, ...over.properties },
  }
}

/** A table with only a name (for sources that name their table and have no config). */
export function bareTable(name: string, namespace: string | null = null): Table {
  return { name, namespace, columns: {}, uniqueBy: [], setBy: [], sortBy: [], deletedTtl: null, dataChangeTimestampField: null, properties: {} }
}

function splitList(s: string): string[] {
  return s.split(',').map((x) => x.trim()).filter(Boolean)
}
