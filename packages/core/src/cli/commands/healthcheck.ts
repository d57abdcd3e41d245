import { Command } from 'commander'
import { openDatastore } from '../../datastore/open.js'
import { anchovyHome } from '../../datastore/stores.js'
import { EXIT } from '../../errors.js'
import { redact } from '../../logging/secrets.js'
import { prepareRun } from '../../execution/start.js'
import { createLogger } from '../../logging/logger.js'
import { openConnections } from '../../connections/manager.js'
import { addAddressOptions } from '../options.js'
import { addressOf, sourcesOf } from './common.js'
import { CORE_SETTINGS } from '../../config/settings.js'

interface Health {
  status?: string
  at?: string
  what: string
}

/** `anchovy healthcheck`: exit 0 when the anchovy is healthy, else 1 with a one-line reason. */
export function healthcheckCommand(): Command {
  const cmd = addAddressOptions(new Command('healthcheck'))
    .description('exit 0 when the datastore is reachable and the last run (or service heartbeat) succeeded recently; else exit 1 with a reason')
    .option('--max-age <seconds>', 'the last run or heartbeat must be younger than this')
    .option('--connections', 'also open every connection of the operator (-op) and run its check()')
    .option('-o, --operator-cls <operator>', 'operator whose connections --connections checks')
  cmd.action(async () => {
    const opts = cmd.opts<{ maxAge?: string; connections?: boolean; operatorCls?: string }>()
    const fail = (reason: string): void => {
      process.stdout.write(`unhealthy: ${redact(reason.replace(/\s*\n\s*-?\s*/g, '; '))}\n`)
      process.exitCode = EXIT.FAILED
    }
    const s = addressOf(cmd)
    const maxAge = opts.maxAge === undefined ? undefined : Number(opts.maxAge)
    if (maxAge !== undefined && !(maxAge > 0)) return fail(`--max-age must be a positive number of seconds (got ${opts.maxAge})`)
    let latest: Health | undefined
    try {
      const ds = await openDatastore(s.datastore)
      const home = anchovyHome({ datastore: ds, user: s.user, anchovyId: s.id, settings: s })
      for (const [file, what] of [['anchovy_run_results.json', 'last run'], ['heartbeat.json', 'last service heartbeat']] as const) {
        const raw = await ds.read(`${home}/$results/${file}`)
        if (!raw) continue
        const rec = JSON.parse(raw.toString('utf8')) as { status?: string; shutdown_at?: string; at?: string }
        const h: Health = { what, ...(rec.status ? { status: rec.status } : {}), ...(rec.at ?? rec.shutdown_at ? { at: rec.at ?? rec.shutdown_at } : {}) }
        if (!latest || (h.at ?? '') > (latest.at ?? '')) latest = h
      }
      await ds.close()
    } catch (err) {
      return fail(`datastore ${s.datastore} is not reachable: ${(err as Error).message}`)
    }
    if (!latest) return fail(`no run of ${s.user}/${s.id} is recorded in ${s.datastore}`)
    if (latest.status !== 'OK') return fail(`${latest.what} (${latest.at}) ended with status ${latest.status}`)
    const age = (Date.now() - Date.parse(latest.at ?? '')) / 1000
    if (maxAge !== undefined && !(age <= maxAge)) return fail(`${latest.what} was ${Math.round(age)}s ago (max ${maxAge}s)`)
    if (opts.connections) {
      try {
        const src = sourcesOf(cmd, CORE_SETTINGS)
        const prepared = await prepareRun({ ...src, flags: { ...src.flags, ...(opts.operatorCls ? { operator_cls: opts.operatorCls } : {}) } })
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
    process.stdout.write(`healthy: ${latest.what} OK ${Math.round(age)}s ago\n`)
  })
  return cmd
}
