import type { AnchovyEntry, AnchovyState } from './catalog.js'

/** One node of the school's DAG: an anchovy, or an upstream no summary describes (`state: 'unknown'`). */
export interface GraphNode {
  /** `<user>/<id>`. */
  readonly key: string
  readonly user: string
  readonly id: string
  readonly state: AnchovyState | 'unknown'
  readonly stale: boolean
  readonly operator: string
  /** Longest path from a source anchovy (0 for anchovies without upstreams), for drawing in columns. */
  readonly level: number
}

/** An upstream relation: `to` reads what `from` wrote. */
export interface GraphEdge {
  readonly from: string
  readonly to: string
}

/** The DAG of upstream relations. */
export interface SchoolGraph {
  readonly nodes: readonly GraphNode[]
  readonly edges: readonly GraphEdge[]
  /** Keys of anchovies on a cycle (upstreams that read each other), which a plan cannot order. */
  readonly cycles: readonly string[]
}

/** Output formats of `school graph`. */
export const GRAPH_FORMATS = ['text', 'mermaid', 'dot', 'json'] as const
export type GraphFormat = (typeof GRAPH_FORMATS)[number]

/** Builds the DAG: an upstream id names an anchovy of the same user (as the runtime reads it). */
export function buildGraph(entries: readonly AnchovyEntry[]): SchoolGraph {
  const nodes = new Map<string, Omit<GraphNode, 'level'>>()
  for (const e of entries)
    nodes.set(`${e.user}/${e.id}`, {
      key: `${e.user}/${e.id}`,
      user: e.user,
      id: e.id,
      state: e.state,
      stale: e.stale,
      operator: e.operator,
    })
  const edges: GraphEdge[] = []
  for (const e of entries) {
    for (const up of e.upstream) {
      const from = `${e.user}/${up}`
      if (!nodes.has(from))
        nodes.set(from, { key: from, user: e.user, id: up, state: 'unknown', stale: false, operator: '' })
      edges.push({ from, to: `${e.user}/${e.id}` })
    }
  }
  const ups = new Map<string, string[]>()
  for (const edge of edges) ups.set(edge.to, [...(ups.get(edge.to) ?? []), edge.from])
  const levels = new Map<string, number>()
  const cycles = new Set<string>()
  const visiting = new Set<string>()
  const level = (key: string): number => {
    const known = levels.get(key)
    if (known !== undefined) return known
    if (visiting.has(key)) {
      cycles.add(key)
      return 0
    }
    visiting.add(key)
    let l = 0
    for (const u of ups.get(key) ?? []) l = Math.max(l, level(u) + 1)
    visiting.delete(key)
    levels.set(key, l)
    return l
  }
  const out = [...nodes.values()].map((n) => ({ ...n, level: level(n.key) }))
  out.sort((a, b) => a.level - b.level || a.key.localeCompare(b.key))
  return { nodes: out, edges, cycles: [...cycles].sort() }
}

const MARK: Readonly<Record<GraphNode['state'], string>> = {
  ok: 'ok',
  failed: 'FAILED',
  running: 'running',
  stale: 'STALE',
  never: 'never ran',
  unknown: 'no summary',
}

function label(n: GraphNode, users: boolean): string {
  return `${users ? n.key : n.id} [${MARK[n.state]}${n.stale && n.state !== 'stale' && n.state !== 'never' ? ', stale' : ''}]`
}

/** Renders the graph as text (one line per anchovy with its upstreams), Mermaid, Graphviz dot or JSON. */
export function renderGraph(g: SchoolGraph, format: GraphFormat): string {
  const users = new Set(g.nodes.map((n) => n.user)).size > 1
  const byKey = new Map(g.nodes.map((n) => [n.key, n]))
  const name = (key: string): string => (users ? key : (byKey.get(key)?.id ?? key))
  const ups = (key: string): string[] => g.edges.filter((e) => e.to === key).map((e) => name(e.from))
  if (format === 'json') return JSON.stringify(g, null, 2)
  if (format === 'text') {
    const lines = g.nodes.map((n) => {
      const from = ups(n.key)
      return `${'  '.repeat(Math.min(n.level, 20))}${label(n, users)}${from.length ? ` <- ${from.join(', ')}` : ''}`
    })
    if (g.cycles.length) lines.push(`cycle through: ${g.cycles.join(', ')}`)
    return lines.join('\n')
  }
  // Names are validated ([A-Za-z0-9_.-]), so quoting them is enough; node ids are positional to stay valid.
  const ids = new Map(g.nodes.map((n, i) => [n.key, `n${i}`]))
  if (format === 'mermaid') {
    const lines = ['flowchart LR']
    for (const n of g.nodes) lines.push(`  ${ids.get(n.key)}["${label(n, users)}"]:::${n.state}`)
    for (const e of g.edges) lines.push(`  ${ids.get(e.from)} --> ${ids.get(e.to)}`)
    lines.push(
      '  classDef ok fill:#d7f5dd,stroke:#2e7d32',
      '  classDef failed fill:#fddede,stroke:#c62828',
      '  classDef running fill:#dde9fd,stroke:#1565c0',
      '  classDef stale fill:#fff3cd,stroke:#b7791f',
      '  classDef never fill:#eeeeee,stroke:#777777',
      '  classDef unknown fill:#ffffff,stroke:#999999,stroke-dasharray: 4 4',
    )
    return lines.join('\n')
  }
  const colour: Readonly<Record<GraphNode['state'], string>> = {
    ok: '#d7f5dd',
    failed: '#fddede',
    running: '#dde9fd',
    stale: '#fff3cd',
    never: '#eeeeee',
    unknown: '#ffffff',
  }
  const lines = [
    'digraph school {',
    '  rankdir=LR;',
    '  node [shape=box, style="rounded,filled", fontname="Helvetica"];',
  ]
  for (const n of g.nodes)
    lines.push(
      `  ${ids.get(n.key)} [label="${label(n, users)}", fillcolor="${colour[n.state]}"${n.state === 'unknown' ? ', style="rounded,dashed"' : ''}];`,
    )
  for (const e of g.edges) lines.push(`  ${ids.get(e.from)} -> ${ids.get(e.to)};`)
  lines.push('}')
  return lines.join('\n')
}
