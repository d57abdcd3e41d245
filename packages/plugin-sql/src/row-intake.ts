import type { Row } from '@anchovies/core'
import {
  coerceDeclared,
  fits,
  textLength,
  typeFor,
  type ColumnState,
  type DeclaredType,
  type SqlType,
} from './column-types.js'
import { sqlError, type Stager } from './dialects/dialect.js'
import { checkName } from './evolve.js'
import { FILE_INDEX, type LoadInput } from './load-input.js'
import { ownValue, readExpression } from './row-access.js'
import type { FastColumn, FastFormat } from './fast-path/copy-converter.js'

/** What changed in the column layout since the last `relayout`: columns added, and widened ones as they were. */
export interface LayoutChange {
  readonly added: ReadonlySet<string>
  readonly changed: ReadonlyMap<string, ColumnState>
}

/** How a load strategy brings its destination (staging table or target) to a new column layout. */
export interface IntakeStrategy {
  readonly stager: Stager
  /** Applies DDL for the change (the stager is finished before and begun again after). */
  applyLayout(change: LayoutChange): Promise<void>
  /** Whether the next row must wait for a relayout even without a change (a direct load creating its table). */
  forceLayout(): boolean
  /** Whether the staging column would change for a longer string (dialects that size strings). */
  widensForLength(c: ColumnState, length: number): boolean
}

/**
 * Takes rows as they arrive: checks keys, coerces declared types, infers and widens column types, and stages each
 * row through the strategy's stager, relaying out the destination when a row brings a new or wider column.
 */
export class RowIntake {
  /** Rows staged per upstream file index. */
  readonly fileRows: number[] = []
  /** Rows staged so far (the next row's arrival order). */
  ord = 0
  private fast: ((row: Row) => boolean) | undefined
  private readonly changed = new Map<string, ColumnState>()
  private readonly added = new Set<string>()
  /** Columns by the row key as it appears, resolved to the normalised column state. */
  private readonly byKey = new Map<string, ColumnState>()
  private readonly keyColumns: readonly string[]

  constructor(
    private readonly input: LoadInput,
    /** Columns by normalised name (shared with the strategy, which reads it when laying out). */
    readonly cols: Map<string, ColumnState>,
    private readonly declared: ReadonlyMap<string, DeclaredType>,
    private readonly norm: (n: string) => string,
    private readonly strategy: IntakeStrategy,
  ) {
    this.keyColumns = [...new Set([...input.table.uniqueBy, ...input.table.setBy])]
    for (const c of cols.values()) this.byKey.set(c.name, c)
  }

  /** Rows the byte fast path staged as COPY text. */
  fastRows = 0
  /** Bumped by every layout the stager begins (byte fast path: members converted for an older one are re-read). */
  layoutVersion = 0

  /** Starts the stager with the current layout. */
  async begin(): Promise<void> {
    this.layoutVersion++
    await this.strategy.stager.begin([...this.cols.values()])
    this.fast = compileRowCheck(
      this.input.dialect.sizesStrings,
      [...this.cols.values()],
      this.keyColumns,
      this.declared,
      (v) => this.input.dialect.decimalFits(v),
    )
  }

  /** Stages every row of `rows`, then waits until the stager has everything. */
  async consume(rows: AsyncIterable<Row[]>): Promise<void> {
    for await (const chunk of rows) {
      for (const row of chunk) {
        const wait = this.handle(row)
        if (wait) await wait
      }
    }
    await this.strategy.stager.finish()
  }

  /**
   * The layout the byte fast path converts members for, or undefined while it cannot (the stager takes no COPY text,
   * the table is still to be created, no columns are known yet).
   */
  fastLayout(): { version: number; format: FastFormat; columns: FastColumn[] } | undefined {
    const format = this.strategy.stager.fastFormat?.()
    if (!format || this.strategy.forceLayout() || this.cols.size === 0) return undefined
    const keys = new Set(this.keyColumns)
    const s = this.input.settings
    const columns = [...this.cols.values()].map((c) => ({
      name: c.name,
      type: c.type,
      declared: this.declared.get(c.name),
      key: keys.has(c.name),
      // MySQL stages key strings as VARCHAR(max(primary length, longest so far)) and other strings as LONGTEXT.
      maxLength:
        this.input.dialect.sizesStrings && c.type === 'str' && keys.has(c.name)
          ? Math.max(s.primaryLength, c.length)
          : undefined,
    }))
    return { version: this.layoutVersion, format, columns }
  }

  /**
   * Stages rows a worker converted to the bulk format for layout `version` (the caller checked it is current);
   * `lengths` (MySQL): the longest string per column, which the target's column sizes follow.
   */
  async addCopy(copy: Buffer, starts: Uint32Array, fi: number, lengths?: Uint32Array): Promise<void> {
    this.input.signal.throwIfAborted()
    const rows = starts.length
    if (lengths) {
      let j = 0
      for (const c of this.cols.values()) {
        const n = lengths[j++] ?? 0
        if (c.type === 'str' && n > c.length) c.length = n
      }
    }
    await this.strategy.stager.addCopy!(copy, starts, this.ord, fi)
    this.ord += rows
    this.fastRows += rows
    this.fileRows[fi] = (this.fileRows[fi] ?? 0) + rows
  }

  /** Checks, types and stages one row of upstream file `fi` (the byte fast path's general rows). */
  add(row: Row, fi: number): Promise<void> | undefined {
    ;(row as Record<symbol, unknown>)[FILE_INDEX] = fi
    return this.handle(row)
  }

  /** Abandons what the stager is sending (after an error). */
  abort(): void {
    this.strategy.stager.abort?.()
  }

  /** Waits until the stager has every row. */
  async end(): Promise<void> {
    await this.strategy.stager.finish()
  }

  private async relayout(): Promise<void> {
    await this.strategy.stager.finish()
    await this.strategy.applyLayout({ added: this.added, changed: this.changed })
    this.changed.clear()
    this.added.clear()
    await this.begin()
  }

  private addRow(row: Row, fi: number): Promise<void> | undefined {
    if (!this.strategy.stager.add(row, this.ord++, fi)) return undefined
    this.input.signal.throwIfAborted()
    return this.strategy.stager.flush()
  }

  /** Checks, types and stages one row; returns a promise only when the row needs to wait (DDL, a full buffer). */
  private handle(row: Row): Promise<void> | undefined {
    const { input, cols, norm, changed, added, byKey } = this
    const d = input.dialect
    const table = input.table
    const f = (row as Record<symbol, unknown>)[FILE_INDEX]
    const fi = typeof f === 'number' ? f : 0
    if (this.fast?.(row)) {
      this.fileRows[fi] = (this.fileRows[fi] ?? 0) + 1
      return this.addRow(row, fi)
    }
    for (const k of this.keyColumns) {
      const v = ownValue(row, k)
      if (v === null || v === undefined || v === '') {
        const file = input.files[fi]
        throw sqlError(
          'ANCH_ERR_SQL_NULL_KEY',
          `table ${table.name}: key column ${JSON.stringify(k)} is empty in row ${(this.fileRows[fi] ?? 0) + 1} of ${file ? file.path : 'the upstream data'}; unique_by/set_by columns must have a value`,
        )
      }
    }
    const hasDeclared = this.declared.size > 0
    for (const key in row) {
      let v = row[key]
      if (hasDeclared) {
        const t = this.declared.get(key)
        if (t !== undefined) {
          const c = coerceDeclared(t, v)
          if (c !== v) row[key] = v = c
        }
      }
      if (v === null || v === undefined) continue
      let c = byKey.get(key)
      if (c && !d.sizesStrings && fits(c.type, v)) continue
      if (!c) {
        checkName(d, key, cols, norm)
        const k = norm(key)
        c = cols.get(k)
        if (!c) {
          c = { name: key, type: typeFor(undefined, v)!, length: 0 }
          cols.set(k, c)
          added.add(k)
          input.logger.info({ column: key, type: c.type }, 'new column')
        }
        byKey.set(key, c)
      }
      if (!fits(c.type, v) || (c.type === 'decimal' && !d.decimalFits(v))) {
        const k = norm(c.name)
        if (!changed.has(k) && !added.has(k)) changed.set(k, { ...c })
        let to = typeFor(c.type, v)!
        if (to === 'decimal' && !d.decimalFits(v)) to = 'str'
        input.logger.info({ column: c.name, from: c.type, to }, 'column widened')
        c.type = to
      }
      if (d.sizesStrings && c.type === 'str') {
        const len = textLength('str', v)
        if (len > c.length) {
          const k = norm(c.name)
          if (this.strategy.widensForLength(c, len) && !changed.has(k) && !added.has(k)) changed.set(k, { ...c })
          c.length = len
        }
      }
    }
    this.fileRows[fi] = (this.fileRows[fi] ?? 0) + 1
    if (changed.size || added.size || this.strategy.forceLayout())
      return this.relayout().then(() => this.addRow(row, fi))
    return this.addRow(row, fi)
  }
}

/** Inline "fits" tests per type (of `v`, never null); other types call `fits`. */
const FITS: Readonly<Partial<Record<SqlType, string>>> = {
  bool: "typeof v === 'boolean'",
  int: "(typeof v === 'number' && Number.isSafeInteger(v)) || F('int', v)",
  float: "typeof v === 'number' || F('float', v)",
  str: 'true',
  json: 'true',
}

/**
 * Compiles the common case of a row's checks for one column layout: every key column has a value, declared
 * columns are coerced, every value fits its column's type and the row has no other properties. True: stage the
 * row as it is; false: the row needs the general path (an error, a new column, a wider type). Undefined where
 * the dialect sizes strings (every string's length matters there).
 */
export function compileRowCheck(
  sizesStrings: boolean,
  columns: readonly ColumnState[],
  keyColumns: readonly string[],
  declared: ReadonlyMap<string, DeclaredType>,
  decimalFits: (v: unknown) => boolean,
): ((row: Row) => boolean) | undefined {
  if (sizesStrings) return undefined
  const keys = new Set(keyColumns)
  // Names and types reach the source only as JSON string literals (see readExpression), never as code.
  const body: string[] = ['let n = 0']
  columns.forEach((c, j) => {
    const name = JSON.stringify(c.name)
    const v = `v${j}`
    body.push(`let ${v} = ${readExpression('row', c.name)}`)
    const t = declared.get(c.name)
    if (t && t !== 'str')
      body.push(`if (typeof ${v} === 'string') { ${v} = C(${JSON.stringify(t)}, ${v}); row[${name}] = ${v} }`)
    if (keys.has(c.name)) body.push(`if (${v} === null || ${v} === undefined || ${v} === '') return false`)
    const inline = Object.hasOwn(FITS, c.type) ? FITS[c.type] : undefined
    let test = (inline ?? `F(${JSON.stringify(c.type)}, v)`).replace(/\bv\b/g, v)
    if (c.type === 'decimal') test = `(${test}) && D(${v})`
    body.push(`if (${v} !== null && ${v} !== undefined) { n++; if (!(${test})) return false }`)
  })
  // Key columns without a column yet (the general path reports them, or adds the column).
  for (const k of keyColumns) {
    if (!columns.some((c) => c.name === k))
      body.push(
        `{ const k = ${readExpression('row', k)}; if (k === null || k === undefined || k === '') return false }`,
      )
  }
  // Every property is a known column exactly when the count of properties equals the count of known ones present.
  body.push('let k = 0', 'for (const _ in row) k++', 'return k === n')
  const src = `return function checkRow(row) {\n${body.join('\n')}\n}`
  return new Function('F', 'C', 'D', 'H', src)(fits, coerceDeclared, decimalFits, Object.hasOwn) as (
    row: Row,
  ) => boolean
}
