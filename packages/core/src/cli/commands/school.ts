import { Command, Option } from 'commander'
import { loadDocument, resolveSettings, throwProblems, type Settings } from '../../config/load-config.js'
import { CORE_SETTINGS } from '../../config/settings.js'
import type { Datastore } from '../../datastore/datastore.js'
import { openDatastore } from '../../datastore/open.js'
import { AnchoviesError } from '../../errors.js'
import { Catalog, DEFAULT_STALE_AFTER_S, type AnchovyEntry } from '../../school/catalog.js'
import { buildGraph, GRAPH_FORMATS, renderGraph, type GraphFormat } from '../../school/graph.js'
import { readFileSync } from 'node:fs'
import { basename, extname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { EXIT } from '../../errors.js'
import { redact } from '../../logging/secrets.js'
import { addSettingOptions } from '../options.js'
import { sourcesOf } from './common.js'

/** The settings every `school` subcommand reads: where the datastore is and whose anchovies to show. */
const SCHOOL_SETTINGS = CORE_SETTINGS.filter((s) => ['user', 'datastore', 'log_level'].includes(s.key))

/** Options shared by the subcommands. */
interface SchoolOptions {
  allUsers?: boolean
  json?: boolean
  staleAfter?: string
}

function addSchoolOptions(cmd: Command): Command {
  addSettingOptions(cmd, SCHOOL_SETTINGS)
  return cmd
    .option('--prod', 'use the user "prod"')
    .option('-a, --all-users', "every user's anchovies (default: the user's own)")
    .option(
      '--stale-after <seconds>',
      `an anchovy without a successful run for this long is stale; default ${DEFAULT_STALE_AFTER_S}`,
    )
    .option('-c, --config <yaml>', 'inline YAML or JSON configuration document')
    .option('--config-file <path>', 'configuration document (default ./config.yaml when present)')
}

/** Datastore and user of a school command. */
export function schoolAddress(cmd: Command): Settings {
  const problems: string[] = []
  const src = sourcesOf(cmd, SCHOOL_SETTINGS)
  const doc = loadDocument(src, problems)
  const config = Object.create(null) as Record<string, unknown>
  for (const k of ['user', 'datastore']) if (Object.hasOwn(doc.config, k)) config[k] = doc.config[k]
  const settings = resolveSettings(src, { ...doc, config }, problems, SCHOOL_SETTINGS)
  throwProblems(problems)
  return settings
}

/** The stale limit given with --stale-after. */
export function staleAfter(opts: SchoolOptions): number {
  if (opts.staleAfter === undefined) return DEFAULT_STALE_AFTER_S
  const n = Number(opts.staleAfter)
  if (!(n > 0))
    throw new AnchoviesError(
      'ANCH_ERR_USAGE',
      `--stale-after must be a positive number of seconds (got ${JSON.stringify(opts.staleAfter)})`,
    )
  return n
}

/** Opens the datastore, runs `fn` and closes it. */
async function withCatalog<T>(
  cmd: Command,
  fn: (catalog: Catalog, s: Settings, opts: SchoolOptions) => Promise<T>,
): Promise<T> {
  const s = schoolAddress(cmd)
  const opts = cmd.opts<SchoolOptions>()
  const ds: Datastore = await openDatastore(s.datastore)
  try {
    return await fn(new Catalog(ds), s, opts)
  } finally {
    await ds.close()
  }
}

/** `5s`, `3m`, `2h`, `4d`. */
export function formatAge(seconds: number | null): string {
  if (seconds === null) return '-'
  if (seconds < 120) return `${seconds}s`
  if (seconds < 7200) return `${Math.round(seconds / 60)}m`
  if (seconds < 172_800) return `${Math.round(seconds / 3600)}h`
  return `${Math.round(seconds / 86_400)}d`
}

/** Pads columns to a table (the last column is not padded). */
export function formatTable(rows: readonly (readonly string[])[]): string {
  const widths: number[] = []
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)))
  return rows
    .map((r) =>
      r
        .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')
}

function lsTable(entries: readonly AnchovyEntry[], users: boolean): string {
  const head = [
    ...(users ? ['USER'] : []),
    'ID',
    'OPERATOR',
    'UPSTREAM',
    'STATE',
    'LAST END',
    'AGE',
    'EXIT',
    'ROWS',
    'TABLES',
    'LOCK',
    'ERROR',
  ]
  const rows = entries.map((e) => [
    ...(users ? [e.user] : []),
    e.id,
    e.operator || '-',
    e.upstream.join(',') || '-',
    e.state === 'ok' || e.state === 'running' || !e.stale
      ? e.state
      : e.state === 'stale'
        ? 'stale'
        : `${e.state}+stale`,
    e.last_run?.ended_at?.replace(/\.\d+Z$/, 'Z') ?? '-',
    formatAge(e.age_s),
    e.last_run?.exit_code === null || e.last_run === null ? '-' : String(e.last_run.exit_code),
    e.last_run ? String(e.last_run.rows) : '-',
    e.tables.map((t) => `${t.name}:${t.rows}`).join(',') || '-',
    e.lock ? `${e.lock.host}:${e.lock.pid}` : '-',
    e.last_run?.error ?? '',
  ])
  return formatTable([head, ...rows])
}

/** `anchovy school`: see, run and watch every anchovy of a datastore. */
export function schoolCommand(): Command {
  const cmd = new Command('school').description(
    'see, run and watch every anchovy of a datastore (ls, graph, run, serve)',
  )

  const ls = addSchoolOptions(new Command('ls'))
    .description('every anchovy: operator, upstreams, tables, last run, age, lock holder, last error')
    .option('--json', 'print JSON (the same objects as GET /api/anchovies)')
  ls.action(async () =>
    withCatalog(ls, async (catalog, s, opts) => {
      const entries = await catalog.list({ user: opts.allUsers ? undefined : s.user, staleAfterS: staleAfter(opts) })
      if (opts.json) process.stdout.write(`${JSON.stringify(entries, null, 2)}\n`)
      else if (!entries.length)
        process.stdout.write(
          `no anchovies${opts.allUsers ? '' : ` of user ${s.user}`} in ${catalog.datastore.url} (a summary is written at the end of each run)\n`,
        )
      else
        process.stdout.write(
          `${lsTable(entries, new Set(entries.map((e) => e.user)).size > 1 || opts.allUsers === true)}\n`,
        )
    }),
  )

  const graph = addSchoolOptions(new Command('graph'))
    .description('the DAG of upstream relations, staleness marked (text, mermaid, dot or json)')
    .addOption(
      new Option('-f, --format <format>', 'output format')
        .choices(GRAPH_FORMATS as unknown as string[])
        .default('text'),
    )
  graph.action(async () =>
    withCatalog(graph, async (catalog, s, opts) => {
      const entries = await catalog.list({ user: opts.allUsers ? undefined : s.user, staleAfterS: staleAfter(opts) })
      process.stdout.write(`${renderGraph(buildGraph(entries), graph.opts<{ format: GraphFormat }>().format)}\n`)
    }),
  )

  const run = addSchoolOptions(new Command('run'))
    .description(
      'run a plan of anchovy commands in upstream order, independent ones in parallel; one result per command in $plans/ of the datastore; exit 1 when a step failed',
    )
    .requiredOption('-p, --plan <file>', 'the plan (YAML): steps of "start …" commands, see docs/school.md')
    .option('-j, --concurrency <n>', 'steps running at once', '4')
    .option('--continue-on-error', 'after a failure, still run the steps that do not depend on the failed one')
    .option('--json', 'print the plan results as JSON instead of a table')
  run.action(async () => {
    const o = run.opts<{ plan: string; concurrency: string; continueOnError?: boolean; json?: boolean }>()
    const concurrency = Number(o.concurrency)
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 256)
      throw new AnchoviesError(
        'ANCH_ERR_USAGE',
        `--concurrency must be a whole number from 1 to 256 (got ${JSON.stringify(o.concurrency)})`,
      )
    const { parsePlan } = await import('../../school/plan.js')
    const { runPlan } = await import('../../school/plan-runner.js')
    let text: string
    try {
      text = readFileSync(o.plan, 'utf8')
    } catch (err) {
      throw new AnchoviesError(
        'ANCH_ERR_CONFIG',
        `cannot read the plan ${JSON.stringify(o.plan)}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
      )
    }
    const plan = parsePlan(
      text,
      basename(o.plan, extname(o.plan))
        .replace(/[^A-Za-z0-9_\-.]/g, '_')
        .replace(/^[.-]+/, '') || 'plan',
    )
    const s = schoolAddress(run)
    const ds = await openDatastore(s.datastore)
    const stop = new AbortController()
    const onSignal = (): void => stop.abort()
    process.once('SIGTERM', onSignal)
    process.once('SIGINT', onSignal)
    try {
      const result = await runPlan(plan, {
        concurrency,
        continueOnError: o.continueOnError === true,
        datastore: ds,
        datastoreLocation: s.datastore,
        env: { ...process.env, ACHVY_USER: s.user },
        bin: fileURLToPath(new URL('../bin.js', import.meta.url)),
        signal: stop.signal,
        onEvent: (event, step, r) => {
          if (!o.json)
            process.stderr.write(
              `${event === 'start' ? 'start' : r!.status.padEnd(5)} ${step.name}${r?.duration_ms != null ? ` (${(r.duration_ms / 1000).toFixed(1)}s)` : ''}\n`,
            )
        },
      })
      if (o.json) process.stdout.write(`${redact(JSON.stringify(result, null, 2))}\n`)
      else {
        const rows = result.steps.map((r) => [
          r.step,
          r.status,
          r.exit_code === null ? '-' : String(r.exit_code),
          r.duration_ms === null ? '-' : `${(r.duration_ms / 1000).toFixed(1)}s`,
          String(r.rows),
          r.error ?? '',
        ])
        process.stdout.write(
          `${formatTable([['STEP', 'STATUS', 'EXIT', 'TIME', 'ROWS', 'ERROR'], ...rows])}\nplan ${result.plan} run ${result.run_id}: ${result.status} (results in ${ds.url.replace(/\/$/, '')}/$plans/${result.plan}/${result.run_id}/)\n`,
        )
      }
      process.exitCode = result.status === 'OK' ? EXIT.OK : EXIT.FAILED
    } finally {
      process.off('SIGTERM', onSignal)
      process.off('SIGINT', onSignal)
      await ds.close()
    }
  })

  const serve = addSchoolOptions(new Command('serve'))
    .description(
      'a read-only HTTP JSON API, /metrics (Prometheus) and a web page over the datastore; loopback only unless --host says otherwise',
    )
    .option('--host <address>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port to listen on (0: any free port)', '8080')
    .option(
      '--token <token>',
      'require Authorization: Bearer <token> on every request but /healthz [env ACHVY_SCHOOL_TOKEN]',
    )
  serve.action(async () => {
    const o = serve.opts<SchoolOptions & { host: string; port: string; token?: string }>()
    const port = Number(o.port)
    if (!Number.isInteger(port) || port < 0 || port > 65535)
      throw new AnchoviesError('ANCH_ERR_USAGE', `--port must be a port number (got ${JSON.stringify(o.port)})`)
    const token = o.token ?? (process.env.ACHVY_SCHOOL_TOKEN || undefined)
    const s = schoolAddress(serve)
    const { buildServer } = await import('../../school/server.js')
    const ds = await openDatastore(s.datastore)
    const app = await buildServer({
      datastore: ds,
      token,
      user: o.allUsers ? undefined : s.user,
      staleAfterS: staleAfter(o),
      env: process.env,
    })
    const address = await app.listen({ host: o.host, port })
    process.stderr.write(`anchovy school: serving ${redact(ds.url)} on ${address}${token ? ' (token required)' : ''}\n`)
    await new Promise<void>((resolve) => {
      process.once('SIGTERM', () => resolve())
      process.once('SIGINT', () => resolve())
    })
    await app.close()
    await ds.close()
  })

  cmd.addCommand(ls)
  cmd.addCommand(graph)
  cmd.addCommand(run)
  cmd.addCommand(serve)
  return cmd
}
