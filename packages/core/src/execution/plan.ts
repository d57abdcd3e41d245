import { AnchoviesError } from '../errors.js'
import type { StreamMethod } from '../operators/operator.js'
import { qualifiedName } from '../tables.js'
import type { Table } from '../types.js'
import { globMatch, isGlob } from './glob.js'

/** How one table is produced: its source method and, for a transform, the tables it consumes. */
export interface PlannedTable {
  readonly key: string
  readonly table: Table
  readonly selected: boolean
  readonly source: StreamMethod
  /** Keys of the input tables when `source` is a transform. */
  readonly inputs: readonly string[]
}

/** What consumes a table's rows. */
export type Consumer =
  | { readonly kind: 'sink'; readonly method: StreamMethod }
  | { readonly kind: 'transform'; readonly method: StreamMethod; readonly output: string }

/** One independently runnable unit: a root source and everything downstream of it. */
export interface Chain {
  readonly root: string
  /** Every table key produced in this chain (root first). */
  readonly tables: readonly string[]
}

/** The execution plan of one batch. */
export interface Plan {
  readonly tables: ReadonlyMap<string, PlannedTable>
  readonly chains: readonly Chain[]
  /** Selected tables that cannot run (no source, no input, cycle), with the reason. */
  readonly failures: ReadonlyMap<string, AnchoviesError>
  consumers(key: string): Consumer[]
}

/** Picks the source for a table: an exact `@source(name)` first, else the most specific matching glob. */
export function resolveSource(methods: readonly StreamMethod[], name: string): StreamMethod | undefined {
  const sources = methods.filter((m) => m.source !== undefined)
  const exact = sources.find((m) => m.source === name)
  if (exact) return exact
  const globs = sources.filter((m) => isGlob(m.source!) && globMatch(m.source!, name))
  globs.sort((a, b) => specificity(b.source!) - specificity(a.source!) || a.name.localeCompare(b.name))
  return globs[0]
}

function specificity(pattern: string): number {
  return pattern.replace(/[*?[\]]/g, '').length
}

/**
 * Plans a batch: for each selected table its source, the transforms feeding it (their input tables run too, but
 * their plain sinks only when they are selected themselves), grouped into chains that share a root source.
 */
export function planBatch(methods: readonly StreamMethod[], selected: readonly Table[], known: readonly Table[]): Plan {
  const byKey = new Map<string, Table>()
  for (const t of [...known, ...selected]) byKey.set(qualifiedName(t), t)
  const selectedKeys = new Set(selected.map(qualifiedName))
  const planned = new Map<string, PlannedTable>()
  const failures = new Map<string, AnchoviesError>()

  const need = (key: string, stack: string[]): void => {
    if (planned.has(key)) return
    if (stack.includes(key))
      throw new AnchoviesError(
        'ANCH_ERR_NO_SOURCE',
        `table ${key}: transforms form a cycle (${[...stack, key].join(' -> ')})`,
      )
    const table = byKey.get(key)!
    const source = resolveSource(methods, table.name)
    if (!source)
      throw new AnchoviesError(
        'ANCH_ERR_NO_SOURCE',
        `table ${key} has no @source: add one or disable the table with -d ${table.name}`,
      )
    const inputs: string[] = []
    for (const pattern of source.sinks) {
      for (const [k, t] of byKey) {
        if (k !== key && t.namespace === table.namespace && globMatch(pattern, t.name)) inputs.push(k)
      }
    }
    if (source.sinks.length && inputs.length === 0) {
      throw new AnchoviesError(
        'ANCH_ERR_NO_SOURCE',
        `table ${key}: transform ${source.name} consumes ${source.sinks.join(', ')}, which matches no known table`,
      )
    }
    for (const k of inputs) need(k, [...stack, key])
    planned.set(key, { key, table, selected: selectedKeys.has(key), source, inputs })
  }
  for (const key of selectedKeys) {
    const before = new Set(planned.keys())
    try {
      need(key, [])
    } catch (err) {
      for (const k of planned.keys()) if (!before.has(k)) planned.delete(k)
      failures.set(key, err as AnchoviesError)
    }
  }
  // Mark inputs that are also selected (need() may have planned them as intermediates first).
  for (const [k, p] of planned) if (selectedKeys.has(k) && !p.selected) planned.set(k, { ...p, selected: true })

  const consumers = (key: string): Consumer[] => {
    const p = planned.get(key)
    if (!p) return []
    const out: Consumer[] = []
    for (const [k, q] of planned)
      if (q.inputs.includes(key)) out.push({ kind: 'transform', method: q.source, output: k })
    if (p.selected) {
      for (const m of methods) {
        if (m.source === undefined && m.sinks.some((pattern) => globMatch(pattern, p.table.name)))
          out.push({ kind: 'sink', method: m })
      }
    }
    return out
  }
  const chains: Chain[] = []
  for (const [key, p] of planned) {
    if (p.inputs.length) continue
    const tables: string[] = []
    const visit = (k: string): void => {
      if (tables.includes(k)) return
      tables.push(k)
      for (const c of consumers(k)) if (c.kind === 'transform') visit(c.output)
    }
    visit(key)
    chains.push({ root: key, tables })
  }
  return { tables: planned, chains, failures, consumers }
}

/** The tables `-e` enables (all when none is given) and `-d` does not disable, matched on bare or qualified name. */
export function selectTables(
  tables: readonly Table[],
  enabled: readonly string[],
  disabled: readonly string[],
): Table[] {
  const matches = (patterns: readonly string[], t: Table): boolean =>
    patterns.some((p) => globMatch(p, t.name) || globMatch(p, qualifiedName(t)))
  return tables.filter((t) => (enabled.length === 0 || matches(enabled, t)) && !matches(disabled, t))
}

/** The `-e`/`-d` names and globs that match none of `tables` (each is a typo or a table that is gone). */
export function unmatchedSelection(
  tables: readonly Table[],
  enabled: readonly string[],
  disabled: readonly string[],
): { flag: '-e' | '-d'; pattern: string }[] {
  const matchesAny = (p: string): boolean => tables.some((t) => globMatch(p, t.name) || globMatch(p, qualifiedName(t)))
  return [
    ...enabled.filter((p) => !matchesAny(p)).map((pattern) => ({ flag: '-e' as const, pattern })),
    ...disabled.filter((p) => !matchesAny(p)).map((pattern) => ({ flag: '-d' as const, pattern })),
  ]
}

/**
 * The share of `selected` that one worker of several runs: the tables of every chain whose first table `owns`
 * accepts (a table and the transforms it feeds stay together), and selected tables that cannot be planned whose
 * own name it accepts (so exactly one worker reports each).
 */
export function workerShare(
  methods: readonly StreamMethod[],
  selected: readonly Table[],
  known: readonly Table[],
  owns: (key: string) => boolean,
): Table[] {
  const plan = planBatch(methods, selected, known)
  const mine = new Set<string>()
  for (const c of plan.chains) if (owns(c.root)) for (const k of c.tables) mine.add(k)
  for (const k of plan.failures.keys()) if (owns(k)) mine.add(k)
  return selected.filter((t) => mine.has(qualifiedName(t)))
}

/**
 * Whether worker `num` of `count` runs the chain whose first table is `key`: a hash of the name, so adding or
 * removing a table never moves another one (FNV-1a: stable across processes, versions and platforms).
 */
export function ownedBy(key: string, num: number, count: number): boolean {
  if (count <= 1) return true
  let h = 0x811c9dc5
  for (const byte of Buffer.from(key, 'utf8')) {
    h ^= byte
    h = Math.imul(h, 0x01000193) >>> 0
  }
  return h % count === num
}
