import { Command } from 'commander'
import type { Datastore } from '../../datastore/datastore.js'
import { openDatastore } from '../../datastore/open.js'
import { anchovyHome } from '../../datastore/stores.js'
import { EXIT } from '../../errors.js'
import { redact } from '../../logging/secrets.js'
import { addAddressOptions } from '../options.js'
import { addressOf, sourcesOf } from './common.js'
import { CORE_SETTINGS } from '../../config/settings.js'

/** The most the healthcheck reads of a results or heartbeat file (the runtime keeps them far smaller). */
export const MAX_STATUS_FILE_BYTES = 16 * 1024 * 1024

/** Default clock skew allowed between this host and the host that wrote a status file. */
export const DEFAULT_MAX_SKEW_SECONDS = 60

/** The status files of an anchovy: what they record, and which field holds their time. */
const STATUS_FILES = [
  { file: 'anchovy_run_results.json', what: 'last run', timeField: 'shutdown_at' },
  { file: 'heartbeat.json', what: 'last service heartbeat', timeField: 'at' },
] as const

/** What one status file says. */
interface Health {
  readonly what: string
  readonly status: string
  readonly at: string
  readonly atMs: number
}

/** A status file that exists but cannot be trusted. */
class CorruptStatusFile extends Error {}

// ISO 8601 as the runtime writes it (Date#toISOString), with an optional offset instead of Z.
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})$/
const STATUS_WORD = /^[A-Za-z_]{1,32}$/

/** `anchovy healthcheck`: exit 0 when the anchovy is healthy, else 1 with a one-line reason. */
export function healthcheckCommand(): Command {
  const cmd = addAddressOptions(new Command('healthcheck'))
    .description(
      'exit 0 when the datastore is reachable and the last run (or service heartbeat) succeeded recently; exit 3 when it ended DEGRADED (allowed failures, tables left unfinished by a stop); else exit 1 with a reason',
    )
    .option('--max-age <seconds>', 'the last run or heartbeat must be younger than this')
    .option(
      '--max-skew <seconds>',
      `a run or heartbeat dated further in the future than this is unhealthy (clock skew); default ${DEFAULT_MAX_SKEW_SECONDS}`,
    )
    .option('--connections', 'also open every connection of the operator (-op) and run its check()')
    .option('-o, --operator-cls <operator>', 'operator whose connections --connections checks')
  cmd.action(async () => {
    const opts = cmd.opts<{ maxAge?: string; maxSkew?: string; connections?: boolean; operatorCls?: string }>()
    const fail = (reason: string): void => {
      process.stdout.write(`unhealthy: ${redact(reason.replace(/\s*\n\s*-?\s*/g, '; '))}\n`)
      process.exitCode = EXIT.FAILED
    }
    const s = addressOf(cmd)
    const maxAge = opts.maxAge === undefined ? undefined : Number(opts.maxAge)
    if (maxAge !== undefined && !(maxAge > 0))
      return fail(`--max-age must be a positive number of seconds (got ${opts.maxAge})`)
    const maxSkew = opts.maxSkew === undefined ? DEFAULT_MAX_SKEW_SECONDS : Number(opts.maxSkew)
    if (!(maxSkew >= 0 && Number.isFinite(maxSkew)))
      return fail(`--max-skew must be a number of seconds, 0 or more (got ${opts.maxSkew})`)
    let ds: Datastore
    try {
      ds = await openDatastore(s.datastore)
    } catch (err) {
      return fail(`datastore ${s.datastore} is not reachable: ${(err as Error).message}`)
    }
    // With --workers N every worker must be healthy: each keeps its own results.
    const workers = s.workers > 1 ? Array.from({ length: s.workers }, (_, num) => num) : [undefined]
    let newest: { latest: Health; age: number } | undefined
    // Degraded is reported after every worker was checked: an unhealthy worker wins.
    let degraded: string | undefined
    try {
      for (const num of workers) {
        const who = num === undefined ? '' : `worker ${num}: `
        const found: Health[] = []
        const home = anchovyHome({ datastore: ds, user: s.user, anchovyId: s.id, settings: s })
        for (const { file, what, timeField } of STATUS_FILES) {
          const name = num === undefined ? file : file.replace(/\.json$/, `.w${num}.json`)
          const path = `${home}/$results/${name}`
          let raw: Buffer | undefined
          try {
            raw = await readBounded(ds, path, MAX_STATUS_FILE_BYTES)
          } catch (err) {
            if (err instanceof CorruptStatusFile)
              return fail(`${what} file ${ds.url}/${path} is corrupt: ${err.message}`)
            return fail(`datastore ${s.datastore} is not reachable: ${(err as Error).message}`)
          }
          if (!raw) continue
          try {
            found.push(parseStatusFile(raw, what, timeField))
          } catch (err) {
            if (!(err instanceof CorruptStatusFile)) throw err
            return fail(`${what} file ${ds.url}/${path} is corrupt: ${err.message}`)
          }
        }
        const now = Date.now()
        for (const h of found) {
          const ahead = (h.atMs - now) / 1000
          if (ahead > maxSkew) {
            return fail(
              `${who}${h.what} is dated ${h.at}, ${Math.round(ahead)}s in the future (more than --max-skew ${maxSkew}s): the clock of this host or of the anchovy's host is wrong`,
            )
          }
        }
        const latest = found.reduce<Health | undefined>((a, b) => (a && a.atMs >= b.atMs ? a : b), undefined)
        if (!latest)
          return fail(
            `no run of ${s.user}/${s.id}${num === undefined ? '' : ` worker ${num} of ${s.workers}`} is recorded in ${s.datastore}`,
          )
        if (latest.status !== 'OK' && latest.status !== 'DEGRADED')
          return fail(`${who}${latest.what} (${latest.at}) ended with status ${latest.status}`)
        const age = Math.max(0, now - latest.atMs) / 1000
        if (maxAge !== undefined && !(age <= maxAge))
          return fail(`${who}${latest.what} was ${Math.round(age)}s ago (max ${maxAge}s)`)
        if (latest.status === 'DEGRADED')
          degraded ??= `${who}${latest.what} (${latest.at}) ended DEGRADED: a table failed with its failure allowed, or a stop left tables unfinished (see failures and unfinished in its results)`
        if (!newest || age < newest.age) newest = { latest, age }
      }
    } finally {
      await ds.close().catch(() => undefined)
    }
    const { latest, age } = newest!
    if (opts.connections) {
      try {
        // Loaded only for --connections: a plain probe stays light.
        const [{ prepareRun }, { createLogger }, { openConnections }] = await Promise.all([
          import('../../execution/start.js'),
          import('../../logging/logger.js'),
          import('../../connections/manager.js'),
        ])
        const src = sourcesOf(cmd, CORE_SETTINGS)
        const prepared = await prepareRun({
          ...src,
          flags: { ...src.flags, ...(opts.operatorCls ? { operator_cls: opts.operatorCls } : {}) },
        })
        const operator = new prepared.operatorClass()
        const conns = await openConnections(operator, prepared.connectionClasses, process.env, createLogger('silent'))
        try {
          for (const value of Object.values(operator)) {
            const check = (value as { check?: () => Promise<void> } | null)?.check
            if (typeof check === 'function') await check.call(value)
          }
        } finally {
          for (const c of conns.reverse()) await c.close().catch(() => undefined)
        }
      } catch (err) {
        return fail(`connection check failed: ${(err as Error).message}`)
      }
    }
    if (degraded) {
      process.stdout.write(`degraded: ${redact(degraded)}\n`)
      process.exitCode = EXIT.DEGRADED
      return
    }
    process.stdout.write(`healthy: ${latest.what} OK ${Math.round(age)}s ago\n`)
  })
  return cmd
}

/**
 * Reads a status file, at most `limit` bytes: undefined when it does not exist, CorruptStatusFile when it is
 * larger (a file the runtime never writes, or a link to an endless device), the datastore's error otherwise.
 */
async function readBounded(ds: Datastore, path: string, limit: number): Promise<Buffer | undefined> {
  let stream: AsyncIterable<Buffer> & { destroy(): void }
  try {
    stream = await ds.readStream(path)
  } catch {
    // readStream rejects alike for a missing object and a failing datastore; read() tells them apart.
    const whole = await ds.read(path)
    if (whole === undefined) return undefined
    if (whole.length > limit) throw new CorruptStatusFile(`larger than ${limit} bytes`)
    return whole
  }
  const chunks: Buffer[] = []
  let size = 0
  try {
    for await (const chunk of stream) {
      size += chunk.length
      if (size > limit) throw new CorruptStatusFile(`larger than ${limit} bytes`)
      chunks.push(chunk)
    }
  } finally {
    stream.destroy()
  }
  return Buffer.concat(chunks)
}

/** Checks a status file's shape: a JSON object with a status word and an ISO time. */
function parseStatusFile(raw: Buffer, what: string, timeField: string): Health {
  let rec: unknown
  try {
    rec = JSON.parse(raw.toString('utf8'))
  } catch (err) {
    throw new CorruptStatusFile(`not JSON (${printable((err as Error).message, 120)})`)
  }
  if (typeof rec !== 'object' || rec === null || Array.isArray(rec))
    throw new CorruptStatusFile(`not a JSON object (got ${kindOf(rec)})`)
  const field = (name: string): unknown =>
    Object.hasOwn(rec, name) ? (rec as Record<string, unknown>)[name] : undefined
  const status = field('status')
  if (status === undefined || status === null) throw new CorruptStatusFile('no "status" field')
  if (typeof status !== 'string') throw new CorruptStatusFile(`"status" must be a string (got ${kindOf(status)})`)
  if (!STATUS_WORD.test(status))
    throw new CorruptStatusFile(`"status" must be a word like OK or ERR (got ${printable(JSON.stringify(status), 60)})`)
  const at = field(timeField)
  if (at === undefined || at === null) throw new CorruptStatusFile(`no "${timeField}" field`)
  if (typeof at !== 'string')
    throw new CorruptStatusFile(`"${timeField}" must be an ISO 8601 time string (got ${kindOf(at)})`)
  const atMs = Date.parse(at)
  if (at.length > 40 || !ISO_TIME.test(at) || !Number.isFinite(atMs)) {
    throw new CorruptStatusFile(
      `"${timeField}" must be an ISO 8601 time like 2025-01-31T12:00:00.000Z (got ${printable(JSON.stringify(at), 60)})`,
    )
  }
  return { what, status, at, atMs }
}

function kindOf(v: unknown): string {
  return v === null
    ? 'null'
    : Array.isArray(v)
      ? 'an array'
      : typeof v === 'object'
        ? 'an object'
        : `${typeof v} ${printable(JSON.stringify(v), 40)}`
}

/** Text from a file for a one-line message: control characters replaced, cut at `max` characters. */
function printable(text: string, max: number): string {
  let out = ''
  for (const ch of text.length > max ? `${text.slice(0, max)}…` : text) {
    const c = ch.codePointAt(0)!
    out += c < 0x20 || (c >= 0x7f && c <= 0x9f) ? '?' : ch
  }
  return out
}
