import { COLUMN_TYPES, type ColumnType, type SortKey, type Table } from './types.js'
import { nameProblem } from './names.js'
import { addProblem } from './config/problems.js'

const KNOWN_KEYS = new Set([
  'name',
  'namespace',
  'columns',
  'cols',
  'unique_by',
  'set_by',
  'sort_by',
  'deleted_ttl',
  'data_change_timestamp_field',
])

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
  if (p) addProblem(problems, `${at}: ${p}`, 'ANCH_ERR_NAME')
  const obj: Record<string, unknown> =
    raw == null ? {} : typeof raw === 'object' && !Array.isArray(raw) ? (raw as Record<string, unknown>) : {}
  if (raw != null && obj !== raw) problems.push(`${at}: must be a map of settings`)
  const setting = (key: string): unknown => (Object.hasOwn(obj, key) ? obj[key] : undefined)

  // Null-prototype maps: column and property names come from data and config (`constructor`, `__proto__`, …).
  const columns: Record<string, ColumnType> = Object.create(null) as Record<string, ColumnType>
  const rawCols = setting('columns') ?? setting('cols')
  if (typeof rawCols === 'string') {
    // The Python form "a int, b str": the type is the last word, so a name may hold spaces (not commas).
    for (const part of splitList(rawCols)) {
      const cut = part.lastIndexOf(' ')
      if (cut < 0) addColumn(part, 'str')
      else addColumn(part.slice(0, cut).trimEnd(), part.slice(cut + 1))
    }
  } else if (rawCols && typeof rawCols === 'object' && !Array.isArray(rawCols)) {
    for (const [col, type] of Object.entries(rawCols)) addColumn(col, String(type))
  } else if (rawCols != null) {
    problems.push(`${at}.columns: must be a map of column name to type`)
  }
  function addColumn(col: string, type: string): void {
    const t =
      type === 'decimal' || type === 'bigint'
        ? type === 'bigint'
          ? 'int'
          : 'float'
        : type === 'json'
          ? 'object'
          : type
    if (!(COLUMN_TYPES as readonly string[]).includes(t)) {
      problems.push(
        `${at}.columns.${col}: unknown type ${JSON.stringify(type)} (use one of ${COLUMN_TYPES.join(', ')})`,
      )
      return
    }
    columns[col] = t as ColumnType
  }

  const list = (key: string): string[] => {
    const v = setting(key)
    if (v == null || v === '') return []
    if (typeof v === 'string') return splitList(v)
    // A list holds names as they are (they may have commas or edge spaces).
    if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v.filter((x) => x !== '')
    problems.push(`${at}.${key}: must be a comma-separated string or a list of column names`)
    return []
  }
  const sortText = typeof setting('sort_by') === 'string'
  const sortBy: SortKey[] = list('sort_by').map((c) => {
    const sign = c[0] === '-' || c[0] === '+' ? c[0] : ''
    const column = sign && sortText ? c.slice(1).trimStart() : c.slice(sign.length)
    return { column, descending: sign === '-' }
  })
  let deletedTtl: number | null = null
  if (setting('deleted_ttl') != null) {
    const n = Number(setting('deleted_ttl'))
    if (!Number.isFinite(n)) problems.push(`${at}.deleted_ttl: must be a number of seconds`)
    else deletedTtl = n < 0 ? null : n
  }
  const dctf = setting('data_change_timestamp_field')
  const properties: Record<string, unknown> = Object.create(null) as Record<string, unknown>
  for (const [k, v] of Object.entries(obj)) if (!KNOWN_KEYS.has(k)) properties[k] = v
  const ns =
    typeof setting('namespace') === 'string' && setting('namespace') ? (setting('namespace') as string) : namespace
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

/** Whether a name survives the Python list form `"a, b"` (split on commas, trimmed). */
function listable(name: string): boolean {
  return name !== '' && !name.includes(',') && name.trim() === name
}

/**
 * Serialises a table in the `$tables/<name>.json` format shared with the Python implementation. Lists are the
 * Python strings (`"a int, b str"`, `"a, b"`, `"-a, b"`) whenever every name survives that form; otherwise the
 * mapping and list forms the format also allows, so any column name a source produces reads back exactly.
 */
export function tableRecord(table: Table): Record<string, unknown> {
  const cols = Object.entries(table.columns)
  const names = (list: readonly string[]): string | string[] => (list.every(listable) ? list.join(', ') : [...list])
  // In sort_by a leading `-` means descending and a leading `+` is dropped: names starting so get an explicit `+`.
  const sortName = (s: SortKey): string => (s.descending ? '-' : /^[-+]/.test(s.column) ? '+' : '') + s.column
  const sortBy = table.sortBy.map(sortName)
  return {
    name: table.name,
    namespace: table.namespace,
    cols: cols.every(([c]) => listable(c) && !c.includes(' '))
      ? cols.map(([c, t]) => `${c} ${t}`).join(', ')
      : Object.fromEntries(cols),
    unique_by: names(table.uniqueBy),
    set_by: names(table.setBy),
    sort_by: table.sortBy.every((s) => listable(s.column)) ? sortBy.join(', ') : sortBy,
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
    columns: Object.assign(Object.create(null) as Record<string, ColumnType>, base.columns, over.columns),
    uniqueBy: over.uniqueBy.length ? over.uniqueBy : base.uniqueBy,
    setBy: over.setBy.length ? over.setBy : base.setBy,
    sortBy: over.sortBy.length ? over.sortBy : base.sortBy,
    deletedTtl: over.deletedTtl ?? base.deletedTtl,
    dataChangeTimestampField: over.dataChangeTimestampField ?? base.dataChangeTimestampField,
    properties: Object.assign(Object.create(null) as Record<string, unknown>, base.properties, over.properties),
  }
}

/** A table with only a name (for sources that name their table and have no config). */
export function bareTable(name: string, namespace: string | null = null): Table {
  return {
    name,
    namespace,
    columns: Object.create(null) as Record<string, ColumnType>,
    uniqueBy: [],
    setBy: [],
    sortBy: [],
    deletedTtl: null,
    dataChangeTimestampField: null,
    properties: Object.create(null) as Record<string, unknown>,
  }
}

function splitList(s: string): string[] {
  return s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean)
}
