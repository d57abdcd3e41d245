import { parse as parseYaml } from 'yaml'
import { AnchoviesError } from '../errors.js'

/** Step names and anchovy ids: what validateName accepts. */
const NAME = /^[A-Za-z0-9_][A-Za-z0-9_\-.]{0,127}$/

/** One command of a plan: the words of `anchovy start`, and what it waits for. */
export interface PlanStep {
  /** The step name (default: the anchovy id the command names with `--id`). */
  readonly name: string
  /** The arguments after `anchovy` (`start …`). */
  readonly args: readonly string[]
  /** The anchovy id (`--id`), when the command names one. */
  readonly anchovyId: string | undefined
  /** Steps this one runs after: the steps of its `-U` upstreams, plus `after:`. */
  readonly after: readonly string[]
  /** Extra environment of this step (values may hold secrets: never written or printed). */
  readonly env: ReadonlyMap<string, string>
}

/** A parsed plan. */
export interface Plan {
  readonly name: string
  readonly steps: readonly PlanStep[]
}

/**
 * Splits a command line into words: whitespace separates, single and double quotes group, a backslash escapes
 * the next character outside single quotes. No expansion of any kind.
 */
export function splitWords(line: string): string[] {
  const words: string[] = []
  let word: string | undefined
  let quote: '"' | "'" | undefined
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!
    if (quote) {
      if (c === quote) quote = undefined
      else if (c === '\\' && quote === '"' && i + 1 < line.length) word += line[++i]!
      else word += c
    } else if (c === '"' || c === "'") {
      quote = c
      word ??= ''
    } else if (c === '\\' && i + 1 < line.length) {
      word = (word ?? '') + line[++i]!
    } else if (/\s/.test(c)) {
      if (word !== undefined) words.push(word)
      word = undefined
    } else {
      word = (word ?? '') + c
    }
  }
  if (quote)
    throw new AnchoviesError(
      'ANCH_ERR_CONFIG',
      `unterminated ${quote} quote in plan command ${JSON.stringify(line.slice(0, 200))}`,
    )
  if (word !== undefined) words.push(word)
  return words
}

/** The values of a flag in `args` (`--id x`, `--id=x`, and its aliases). */
function flagValues(args: readonly string[], names: readonly string[]): string[] {
  const out: string[] = []
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!
    const eq = a.indexOf('=')
    if (a.startsWith('--') && eq > 0 && names.includes(a.slice(0, eq))) out.push(a.slice(eq + 1))
    else if (names.includes(a) && i + 1 < args.length) out.push(args[++i]!)
  }
  return out
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

/**
 * Parses a plan document (YAML or JSON):
 * `{ name?, steps: [ "start -op … --id dl" | { name?, run: "start …" | [words], after?: [step], env?: {K: V} } ] }`.
 * Every problem is collected into one error.
 */
export function parsePlan(text: string, defaultName: string): Plan {
  const problems: string[] = []
  let doc: unknown
  try {
    doc = parseYaml(text, { maxAliasCount: 100 })
  } catch (err) {
    throw new AnchoviesError('ANCH_ERR_CONFIG', `the plan is not valid YAML: ${(err as Error).message.split('\n')[0]}`)
  }
  if (Array.isArray(doc)) doc = { steps: doc }
  if (!isObject(doc) || !Array.isArray(doc.steps))
    throw new AnchoviesError(
      'ANCH_ERR_CONFIG',
      'the plan must be a mapping with a "steps:" list (or a list of commands)',
    )
  const name = doc.name === undefined ? defaultName : doc.name
  if (typeof name !== 'string' || !NAME.test(name) || name.includes('..'))
    problems.push(`plan name ${JSON.stringify(name)}: use letters, digits, "_", "-" and "."`)
  const raw: {
    name: string
    args: string[]
    id: string | undefined
    ups: string[]
    after: string[]
    env: Map<string, string>
  }[] = []
  doc.steps.forEach((s: unknown, i: number) => {
    const where = `steps[${i}]`
    const step = typeof s === 'string' || Array.isArray(s) ? { run: s } : s
    if (!isObject(step)) return problems.push(`${where}: a command string or a mapping with "run:"`)
    let args: string[]
    try {
      args =
        typeof step.run === 'string'
          ? splitWords(step.run)
          : Array.isArray(step.run) && step.run.every((w) => typeof w === 'string')
            ? [...(step.run as string[])]
            : []
    } catch (err) {
      return problems.push(`${where}: ${(err as Error).message}`)
    }
    if (args[0] === 'anchovy') args.shift()
    if (args[0] !== 'start')
      return problems.push(
        `${where}: the command must be "start …" (the words of anchovy start), got ${JSON.stringify(args.slice(0, 3).join(' '))}`,
      )
    const ids = flagValues(args, ['--id', '-i'])
    const id = ids.at(-1)
    const stepName = step.name === undefined ? id : step.name
    if (typeof stepName !== 'string' || !NAME.test(stepName) || stepName.includes('..'))
      return problems.push(`${where}: give the step a "name:" or the command an --id (letters, digits, "_", "-", ".")`)
    const after = step.after === undefined ? [] : Array.isArray(step.after) ? step.after : [step.after]
    if (!after.every((a): a is string => typeof a === 'string'))
      return problems.push(`${where}: "after:" lists step names`)
    const env = new Map<string, string>()
    if (step.env !== undefined) {
      if (!isObject(step.env)) return problems.push(`${where}: "env:" is a mapping of variable names to values`)
      for (const [k, v] of Object.entries(step.env)) {
        if (
          !/^[A-Za-z_][A-Za-z0-9_]*$/.test(k) ||
          (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean')
        )
          problems.push(`${where}: env ${JSON.stringify(k)} must be a NAME: scalar`)
        else env.set(k, String(v))
      }
    }
    raw.push({ name: stepName, args, id, ups: flagValues(args, ['-U', '--upstream', '-up', '--up']), after, env })
  })
  const names = new Set<string>()
  for (const s of raw) {
    if (names.has(s.name)) problems.push(`step ${s.name}: two steps have this name (give one a "name:")`)
    names.add(s.name)
  }
  const byId = new Map<string, string>()
  for (const s of raw) if (s.id !== undefined && !byId.has(s.id)) byId.set(s.id, s.name)
  const steps: PlanStep[] = raw.map((s) => {
    for (const a of s.after) if (!names.has(a)) problems.push(`step ${s.name}: "after: ${a}" names no step of the plan`)
    const deps = new Set([...s.after, ...s.ups.map((u) => byId.get(u)).filter((u): u is string => u !== undefined)])
    deps.delete(s.name)
    return { name: s.name, args: s.args, anchovyId: s.id, after: [...deps], env: s.env }
  })
  if (!problems.length) {
    const cycle = findCycle(steps)
    if (cycle) problems.push(`the steps depend on each other in a cycle: ${cycle.join(' -> ')}`)
  }
  if (problems.length) throw new AnchoviesError('ANCH_ERR_CONFIG', `plan ${defaultName}: ${problems.join('; ')}`)
  return { name: name as string, steps }
}

function findCycle(steps: readonly PlanStep[]): string[] | undefined {
  const after = new Map(steps.map((s) => [s.name, s.after]))
  const state = new Map<string, 1 | 2>()
  const path: string[] = []
  const visit = (n: string): string[] | undefined => {
    if (state.get(n) === 2) return undefined
    if (state.get(n) === 1) return [...path.slice(path.indexOf(n)), n]
    state.set(n, 1)
    path.push(n)
    for (const d of after.get(n) ?? []) {
      const c = visit(d)
      if (c) return c
    }
    path.pop()
    state.set(n, 2)
    return undefined
  }
  for (const s of steps) {
    const c = visit(s.name)
    if (c) return c
  }
  return undefined
}
