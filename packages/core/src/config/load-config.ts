import { existsSync, readFileSync } from 'node:fs'
import { hostname } from 'node:os'
import * as nodePath from 'node:path'
import { createRequire } from 'node:module'
import { addProblem } from './problems.js'
import { nameProblem } from '../names.js'
import { parseTable } from '../tables.js'
import type { Table } from '../types.js'
import { homeDirectory, noHomeReason, osUserName, ownValue } from './os-account.js'
import { CORE_SETTINGS, type SettingSpec } from './settings.js'

// The YAML parser is loaded on first use: most runs (a probe, flags and env only) read no document, and loading it
// was a third of `anchovy healthcheck`'s start-up. Synchronous, because the settings are resolved synchronously.
const requireModule = createRequire(import.meta.url)
let yamlModule: typeof import('yaml') | undefined
const YAML = {
  parse: (text: string): unknown => (yamlModule ??= requireModule('yaml') as typeof import('yaml')).parse(text),
}

/** Resolved settings: every declared key, typed. */
export type Settings = Record<string, unknown> & {
  id: string
  user: string
  operator_cls?: string
  service: boolean
  interval: number
  max_batches: number
  follow: boolean
  execution_timeout?: number
  abort_grace: number
  upstream: string[]
  enabled: string[]
  disabled: string[]
  concurrency: number
  fail_fast: boolean
  allow_failures: boolean
  strict: boolean
  prod: boolean
  /** True when no id was given and it defaulted to the host name. */
  id_defaulted?: boolean
  workers: number
  worker_num: number
  batch_max_rows: number
  batch_max_bytes: number
  commit_interval: number
  commit_retention_days: number
  log_retention_days: number
  datastore: string
  log_level: string
  lock_ttl: number
  stream_queue_size: number
  progress_interval: number
}

/** The parsed configuration document (config.yaml, `--config-file` or `-c`). */
export interface ConfigDocument {
  readonly where: string
  /** The `config:` map with no prototype: a key like `__proto__` or `toString` is an own entry, reported as unknown. */
  readonly config: Record<string, unknown>
  readonly tables: Table[]
}

/** Where settings come from, highest precedence first. */
export interface ConfigSources {
  /** Values from CLI flags the user actually gave. */
  readonly flags: Record<string, unknown>
  readonly env: NodeJS.ProcessEnv
  /** `--config-file` path. */
  readonly configFile?: string | undefined
  /** `-c/--config` inline YAML or JSON. */
  readonly configText?: string | undefined
  readonly cwd: string
  /** `--prod`. */
  readonly prod?: boolean | undefined
  /** Command-line words the core options did not consume (operator-specific flags). */
  readonly extraArgs?: readonly string[] | undefined
}

/**
 * Parses operator-specific flags (declared in an operator's `static settings`) out of `args`;
 * anything left over is reported as an unknown option.
 */
export function parseExtraFlags(
  args: readonly string[],
  specs: readonly SettingSpec[],
  problems: string[],
): Record<string, unknown> {
  const out: Record<string, unknown> = Object.create(null) as Record<string, unknown>
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!
    const eq = arg.indexOf('=')
    const flag = eq > 0 ? arg.slice(0, eq) : arg
    const spec = specs.find((s) => s.flags?.split(/[ ,]+/).includes(flag))
    if (!spec) {
      problems.push(`unknown option or argument ${JSON.stringify(arg)} (see anchovy start --help)`)
      continue
    }
    if (spec.type === 'bool' && !spec.flags!.includes('<')) {
      out[spec.key] = eq > 0 ? arg.slice(eq + 1) : true
      continue
    }
    const value = eq > 0 ? arg.slice(eq + 1) : args[++i]
    if (value === undefined) problems.push(`option ${flag} needs a value`)
    else if (spec.type === 'list') out[spec.key] = [...((out[spec.key] as string[] | undefined) ?? []), value]
    else out[spec.key] = value
  }
  return out
}

/** Reads the configuration document: `-c` text over `--config-file` (or `./config.yaml` when present). */
export function loadDocument(src: ConfigSources, problems: string[]): ConfigDocument {
  const docs: { where: string; value: Record<string, unknown> }[] = []
  const file = src.configFile ?? (existsSync(nodePath.join(src.cwd, 'config.yaml')) ? 'config.yaml' : undefined)
  if (file) {
    const path = nodePath.resolve(src.cwd, file)
    let text: string | undefined
    try {
      text = readFileSync(path, 'utf8')
    } catch (err) {
      problems.push(`${file}: cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`)
    }
    if (text !== undefined) {
      const v = parseDoc(text, file, problems)
      if (v) docs.push({ where: file, value: v })
    }
  }
  if (src.configText !== undefined) {
    const v = parseDoc(src.configText, '--config', problems)
    if (v) docs.push({ where: '--config', value: v })
  }
  // Keys come from the document: a plain object would take `__proto__` as its prototype (Object.assign) and
  // answer `config.toString` from Object.prototype, bypassing the unknown-setting check.
  const config: Record<string, unknown> = Object.create(null) as Record<string, unknown>
  const tableRaw = new Map<string, { where: string; raw: unknown }>()
  for (const { where, value } of docs) {
    for (const [k, v] of Object.entries(value)) {
      if (k === 'config') {
        if (v == null) continue
        if (typeof v !== 'object' || Array.isArray(v)) problems.push(`${where}: config must be a map of settings`)
        else for (const [key, value] of Object.entries(v as object)) config[key] = value
      } else if (k === 'tbls') {
        if (v == null) continue
        if (typeof v !== 'object' || Array.isArray(v))
          problems.push(`${where}: tbls must be a map of table name to settings`)
        else for (const [name, raw] of Object.entries(v as object)) tableRaw.set(name, { where, raw })
      } else {
        problems.push(
          `${where}: unknown top-level key ${JSON.stringify(k.length > 100 ? `${k.slice(0, 100)}…` : k)} (expected tbls and config)`,
        )
      }
    }
  }
  const tables = [...tableRaw.entries()].map(([name, { where, raw }]) => parseTable(name, raw, where, problems))
  return { where: docs.map((d) => d.where).join(' + ') || '(none)', config, tables }
}

function parseDoc(text: string, where: string, problems: string[]): Record<string, unknown> | undefined {
  let value: unknown
  try {
    value = YAML.parse(text)
  } catch (err) {
    const e = err as { linePos?: { line: number; col: number }[]; message: string }
    const pos = e.linePos?.[0]
    problems.push(
      `${where}${pos ? ` line ${pos.line} column ${pos.col}` : ''}: invalid YAML/JSON: ${e.message.split('\n')[0]}`,
    )
    return undefined
  }
  if (value == null) return {}
  if (typeof value !== 'object' || Array.isArray(value)) {
    problems.push(`${where}: must be a map with tbls and config keys`)
    return undefined
  }
  return value as Record<string, unknown>
}

/**
 * Resolves every setting: CLI flag > `ACHVY_*` env > config.yaml `config:` > default. Collects all problems.
 */
export function resolveSettings(
  src: ConfigSources,
  doc: ConfigDocument,
  problems: string[],
  specs: readonly SettingSpec[] = CORE_SETTINGS,
): Settings {
  const out: Record<string, unknown> = {}
  const knownKeys = new Set<string>()
  for (const spec of specs) {
    knownKeys.add(spec.key)
    spec.invertedKeys?.forEach((k) => knownKeys.add(k))
    let raw: unknown
    let where = ''
    let invert = false
    const flag = ownValue(src.flags, spec.key)
    const envValue = (name: string): string | undefined => {
      const v = ownValue(src.env, name)
      return v === '' ? undefined : v
    }
    if (flag !== undefined) {
      raw = flag
      where = `option for ${spec.key}`
    } else {
      const env = spec.env.find((e) => envValue(e) !== undefined)
      const invEnv = spec.invertedEnv?.find((e) => envValue(e) !== undefined)
      if (env) [raw, where] = [envValue(env), env]
      else if (invEnv) [raw, where, invert] = [envValue(invEnv), invEnv, true]
      else if (ownValue(doc.config, spec.key) !== undefined)
        [raw, where] = [ownValue(doc.config, spec.key), `${doc.where}: config.${spec.key}`]
      else {
        const inv = spec.invertedKeys?.find((k) => ownValue(doc.config, k) !== undefined)
        if (inv) [raw, where, invert] = [ownValue(doc.config, inv), `${doc.where}: config.${inv}`, true]
      }
    }
    if (raw === undefined) {
      if (spec.default !== undefined) out[spec.key] = Array.isArray(spec.default) ? [...spec.default] : spec.default
      continue
    }
    const v = convert(spec, raw, where, problems)
    if (v !== undefined) out[spec.key] = invert ? !v : v
  }
  for (const k of Object.keys(doc.config)) {
    if (!knownKeys.has(k)) problems.push(`${doc.where}: unknown setting config.${printableKey(k)}`)
  }
  if (src.prod) out.prod = true
  if (out.prod === true) {
    out.user = 'prod'
    out.strict = true
  }
  out.user ??= osUserName(src.env).replace(/[^A-Za-z0-9_.-]/g, '_')
  if (out.id === undefined) {
    out.id =
      hostname()
        .split('.')[0]
        ?.replace(/[^A-Za-z0-9_.-]/g, '_') || 'anchovy'
    out.id_defaulted = true
  }
  for (const [key, kind] of [
    ['id', 'anchovy id'],
    ['user', 'user'],
  ] as const) {
    const p = nameProblem(kind, String(out[key]))
    if (p) addProblem(problems, `${key}: ${p}`, 'ANCH_ERR_NAME')
  }
  for (const up of (out.upstream as string[] | undefined) ?? []) {
    const p = nameProblem('upstream id', up)
    if (p) addProblem(problems, `upstream: ${p}`, 'ANCH_ERR_NAME')
  }
  const workers = Number(out.workers ?? 1)
  const workerNum = Number(out.worker_num ?? 0)
  if (workerNum >= workers) {
    const from =
      ownValue(src.env, 'ACHVY_WORKER_NUM') === undefined && ownValue(src.env, 'JOB_COMPLETION_INDEX') !== undefined
        ? " (from JOB_COMPLETION_INDEX: set ACHVY_WORKERS, --workers, to the Indexed Job's completions)"
        : ''
    problems.push(
      `worker_num: ${workerNum} is not below workers (${workers}): workers are numbered 0 to workers-1${from}`,
    )
  }
  if (out.datastore === undefined) {
    const achvyHome = ownValue(src.env, 'ACHVY_HOME')
    const home = achvyHome ? undefined : homeDirectory(src.env)
    if (achvyHome) out.datastore = achvyHome
    else if (home) out.datastore = nodePath.join(home, '.anchovies')
    else {
      out.datastore = ''
      problems.push(
        `datastore: none given and no home folder for the default ~/.anchovies (${noHomeReason()}); pass --datastore, or set ACHVY_DATASTORE or ACHVY_HOME`,
      )
    }
  }
  return out as Settings
}

/** A key from a document as it appears in a message: bare when plain, else quoted (control characters escaped). */
export function printableKey(key: string): string {
  return /^[A-Za-z0-9_$-]{1,100}$/.test(key) ? key : JSON.stringify(key.length > 100 ? `${key.slice(0, 100)}…` : key)
}

const TRUE = new Set(['true', 't', 'yes', 'y', '1', 'on'])
const FALSE = new Set(['false', 'f', 'no', 'n', '0', 'off'])

function convert(spec: SettingSpec, raw: unknown, where: string, problems: string[]): unknown {
  const bad = (what: string): undefined => {
    problems.push(`${where}: ${what} (got ${JSON.stringify(raw)})`)
    return undefined
  }
  switch (spec.type) {
    case 'bool': {
      if (typeof raw === 'boolean') return raw
      const s = String(raw).trim().toLowerCase()
      if (TRUE.has(s)) return true
      if (FALSE.has(s)) return false
      return bad('must be true or false')
    }
    case 'int':
    case 'number': {
      const n = typeof raw === 'number' ? raw : Number(String(raw).trim())
      if (String(raw).trim() === '' || !Number.isFinite(n)) return bad('must be a number')
      if (spec.type === 'int' && !Number.isInteger(n)) return bad('must be a whole number')
      if (spec.min !== undefined && n < spec.min)
        return bad(`must be at least ${spec.min}${spec.minReason ? ` (${spec.minReason})` : ''}`)
      if (spec.max !== undefined && n > spec.max)
        return bad(`must be at most ${spec.max}${spec.maxReason ? ` (${spec.maxReason})` : ''}`)
      return n
    }
    case 'list': {
      const items = Array.isArray(raw) ? raw.flatMap((x) => String(x).split(',')) : String(raw).split(',')
      return items.map((x) => x.trim()).filter(Boolean)
    }
    case 'string': {
      if (typeof raw === 'object') return bad('must be a string')
      const s = String(raw)
      if (spec.choices && !spec.choices.includes(s)) return bad(`must be one of ${spec.choices.join(', ')}`)
      return s
    }
  }
}

export { throwProblems } from './problems.js'
