// The crash-anywhere suite (issue 6). Sizes:
//   CI (default)   npm run chaos                                   30 iterations, 20,000 rows, on each datastore
//   full (local)   CHAOS_ITERATIONS=300 CHAOS_ROWS=200000 npm run chaos
//   replay         CHAOS_SEED=<seed printed by a run> (plus its CHAOS_ITERATIONS/CHAOS_ROWS)
//   one datastore  CHAOS_FILESYSTEM_ITERATIONS / CHAOS_AZURITE_ITERATIONS override CHAOS_ITERATIONS for one file
// A seed replays the source changes and the kill schedule; where a process is when the signal lands still
// depends on the machine, so a replay reproduces the scenario, not necessarily the exact interleaving.
import { expect } from 'vitest'
import { startSshd, type Sshd } from '../../packages/plugin-sftp/test/helpers/sshd.js'
import { ChangingSource, downloaderConfig, rng } from './source.js'
import {
  checkPipeline,
  createDatabase,
  envInt,
  killAll,
  outcomeText,
  spawnAnchovy,
  tempDir,
  writeConfig,
  type Outcome,
  type PgDatabase,
  type Running,
} from './harness.js'

/** The size of one crash-anywhere run: CI defaults, `CHAOS_ITERATIONS`/`CHAOS_ROWS`/`CHAOS_SEED` for a full or replayed run. */
export interface ChaosSize {
  readonly iterations: number
  readonly rows: number
  readonly seed: number
}

/** Reads the size from the environment (`CHAOS_<NAME>` wins over `CHAOS_ITERATIONS`, e.g. CHAOS_AZURITE_ITERATIONS). */
export function chaosSize(name: string, ciIterations: number): ChaosSize {
  const upper = name.toUpperCase()
  return {
    iterations: envInt(`CHAOS_${upper}_ITERATIONS`, envInt('CHAOS_ITERATIONS', ciIterations)),
    rows: envInt('CHAOS_ROWS', 20_000),
    seed: envInt('CHAOS_SEED', (Date.now() % 1_000_000) + 1),
  }
}

/** Where the datastore lives for one run. */
export interface DatastoreUnderTest {
  readonly name: string
  /** `--datastore` value. */
  readonly location: string
  /** Extra CLI flags (e.g. a short lock TTL where a killed holder's lock only expires). */
  readonly flags: readonly string[]
  /**
   * True when a SIGKILLed holder's lock outlives it (a blob lease until it expires): then a run may exit 75
   * naming a holder the harness killed.
   */
  readonly leaseOutlivesHolder: boolean
  /**
   * True when a run lock of `<user>/<id>` is blocked by a takeover marker that a SIGKILLed taker left behind
   * (core's filesystem lock, see the report of issue 6): such a marker only expires after the lock TTL.
   */
  strandedTakeover?(home: string): boolean
}

/**
 * True when two successful runs did not overlap (one finished before the other started up, e.g. on a slow
 * machine): legitimate, unlike two runs working at once.
 */
function sequential(a: Outcome, b: Outcome): boolean {
  const span = (o: Outcome): [number, number] => {
    const r = JSON.parse(o.stdout) as { startup_at?: string; shutdown_at?: string }
    return [Date.parse(r.startup_at ?? ''), Date.parse(r.shutdown_at ?? '')]
  }
  try {
    const [[a0, a1], [b0, b1]] = [span(a), span(b)]
    return a1 < b0 || b1 < a0
  } catch {
    return false
  }
}

const DOWNLOADER = 'chaos_dl'
const UPLOADER = 'chaos_up'
const USER = 'chaos'

/**
 * The crash-anywhere loop: the source changes, two downloaders of one id start at once, then an uploader into
 * PostgreSQL; each run is SIGKILLed at a random moment in about half the iterations and SIGTERMed in about a
 * fifth. Clean runs follow, then the target must hold exactly the latest rows of every source file.
 */
export async function crashAnywhere(store: DatastoreUnderTest, size: ChaosSize): Promise<void> {
  const random = rng(size.seed)
  const log: string[] = [
    `crash-anywhere on ${store.name}: seed ${size.seed} (replay: CHAOS_SEED=${size.seed} CHAOS_ITERATIONS=${size.iterations} CHAOS_ROWS=${size.rows})`,
  ]
  const started = Date.now()
  let sshd: Sshd | undefined
  let db: PgDatabase | undefined
  const work = tempDir('anch-chaos-')
  const killed = new Set<number>()
  const stats = {
    sigkill: 0,
    sigterm: 0,
    locked75: 0,
    staleLease75: 0,
    strandedTakeover75: 0,
    sequentialTwins: 0,
    runs: 0,
  }
  try {
    sshd = await startSshd()
    db = await createDatabase('chaos')
    const source = new ChangingSource(sshd.root, random)
    const config = writeConfig(work.dir, downloaderConfig())
    const env = {
      ACHVY_USER: USER,
      ACHVY_DATASTORE: store.location,
      ACHVY_CNXN__URI: sshd.uri(),
      ACHVY_CNXN__HOST_KEY: sshd.hostFingerprint,
      ACHVY_CNXN__RETRY_DELAY: '0.2',
      ACHVY_CNXN__DB__URL: db.url,
    }
    const dlArgs = ['start', '-op', 'sftp.CsvDownloader', '--id', DOWNLOADER, '--config-file', config, ...store.flags]
    const upArgs = ['start', '-op', 'sql.Uploader', '--id', UPLOADER, '-U', DOWNLOADER, ...store.flags]
    // Typical run times, so that kill times spread over the whole life of a process.
    const typical = { dl: 1500, up: 1500 }

    /** Accepts an outcome or throws with the replay log. */
    const judge = (what: string, o: Outcome, allowLocked: boolean, id: string): void => {
      stats.runs++
      if (o.sent && o.signal === o.sent.signal) {
        // died of the signal (a SIGTERM before the handlers are installed kills too): its lock outlives it
        killed.add(o.pid)
        return
      }
      if (o.code === 0) return
      if (o.code === 75) {
        const holder = /pid (\d+)/.exec(o.stderr)?.[1]
        if (allowLocked) return void stats.locked75++
        // A holder killed between taking the lease and writing its info leaves the previous holder's info in the
        // lock blob: the message then names that one, so in lease mode any earlier kill explains a 75.
        if (store.leaseOutlivesHolder && killed.size > 0) return void stats.staleLease75++
        if (holder && killed.has(Number(holder)) && store.strandedTakeover?.(`${USER}/${id}`)) {
          log.push(
            `   WARNING: ${what} exited 75 behind the dead pid ${holder}: a killed taker left $lock.takeover (core bug, expires after the lock TTL)`,
          )
          return void stats.strandedTakeover75++
        }
      }
      throw new Error(`${what}: unexpected ${outcomeText(o)}\n${o.stderr.slice(-3000)}`)
    }
    const kill = (r: Running[], typicalMs: number): string => {
      const p = random()
      const signal: NodeJS.Signals | null = p < 0.5 ? 'SIGKILL' : p < 0.7 ? 'SIGTERM' : null
      if (!signal) return ''
      const at = Math.floor(random() * typicalMs * 1.2)
      if (signal === 'SIGKILL') stats.sigkill++
      else stats.sigterm++
      setTimeout(() => r.forEach((x) => x.send(signal)), at)
      return `${signal}@${at}ms`
    }
    const learn = (key: 'dl' | 'up', o: Outcome): void => {
      if (!o.sent && o.code === 0) typical[key] = Math.round(typical[key] * 0.7 + o.ms * 0.3)
    }

    for (let i = 0; i < size.iterations; i++) {
      const changes = source.mutate(size.rows, size.iterations - i)
      // Two downloaders of the same id at once: exactly one may work.
      const a = spawnAnchovy(dlArgs, env, work.dir)
      const b = spawnAnchovy(dlArgs, env, work.dir)
      const plan = kill([a, b], typical.dl)
      const [oa, ob] = await Promise.all([a.done, b.done])
      const codes = [oa, ob].filter((o) => !o.sent).map((o) => o.code)
      log.push(`#${i} ${changes.join(',')} | dl ${plan || 'clean'}: A ${outcomeText(oa)}, B ${outcomeText(ob)}`)
      const blocked = stats.staleLease75 + stats.strandedTakeover75
      judge(`iteration ${i} downloader A`, oa, ob.code === 0 || !!ob.sent, DOWNLOADER)
      judge(`iteration ${i} downloader B`, ob, oa.code === 0 || !!oa.sent, DOWNLOADER)
      const bothBlocked = stats.staleLease75 + stats.strandedTakeover75 - blocked === 2
      if (codes.length === 2 && codes.every((c) => c === 0) && sequential(oa, ob)) stats.sequentialTwins++
      else if (codes.length === 2 && codes.filter((c) => c === 0).length !== 1 && !bothBlocked) {
        throw new Error(
          `iteration ${i}: two downloaders of one id exited ${codes.join(' and ')}; exactly one must work`,
        )
      }
      learn('dl', oa.code === 0 ? oa : ob)

      // Each uploader run takes the PostgreSQL byte fast path or the general path at random: a crash of either,
      // and a path changed between a crash and its recovery, must converge alike.
      const fastPath = random() < 0.5 ? 'on' : 'off'
      const up = spawnAnchovy(upArgs, { ...env, ACHVY_SQL_FAST_PATH: fastPath }, work.dir)
      const upPlan = kill([up], typical.up)
      const ou = await up.done
      log.push(`#${i}    up (fast path ${fastPath}) ${upPlan || 'clean'}: ${outcomeText(ou)}`)
      judge(`iteration ${i} uploader`, ou, false, UPLOADER)
      learn('up', ou)
    }

    // Clean runs until both converge (a lease left by a killed holder may need to expire first).
    const clean = async (args: string[], what: string, id: string): Promise<Outcome> => {
      const deadline = Date.now() + 90_000
      for (;;) {
        const o = await spawnAnchovy(args, env, work.dir).done
        log.push(`final ${what}: ${outcomeText(o)}`)
        if (o.code === 0) return o
        judge(`final ${what}`, o, false, id)
        if (Date.now() > deadline) throw new Error(`final ${what}: still locked after 90 s`)
        await new Promise((r) => setTimeout(r, 1000))
      }
    }
    await clean(dlArgs, 'downloader', DOWNLOADER)
    await clean(upArgs, 'uploader', UPLOADER)
    // A second clean round changes nothing: nothing is downloaded or loaded twice.
    await clean(dlArgs, 'downloader (again)', DOWNLOADER)
    await clean(upArgs, 'uploader (again)', UPLOADER)

    const problems = await checkPipeline({
      source,
      db,
      datastore: store.location,
      user: USER,
      downloader: DOWNLOADER,
      uploader: UPLOADER,
    })
    const secs = ((Date.now() - started) / 1000).toFixed(0)
    log.push(
      `${size.iterations} iterations, ${source.rowCount} source rows, ${stats.runs} runs (${stats.sigkill} SIGKILL, ${stats.sigterm} SIGTERM plans, ` +
        `${stats.locked75} twin exits 75, ${stats.staleLease75} exits 75 behind a killed holder's lease, ` +
        `${stats.strandedTakeover75} behind a stranded takeover marker, ${stats.sequentialTwins} twins that ran one after the other) in ${secs}s`,
    )
    if (problems.length) throw new Error(`the target did not converge:\n  ${problems.join('\n  ')}`)
    console.log(log.join('\n'))
    expect(problems).toEqual([])
  } catch (err) {
    killAll()
    const e = err as Error
    e.message = `${log.join('\n')}\n${e.message}`
    throw e
  } finally {
    killAll()
    await sshd?.stop().catch(() => undefined)
    await db?.drop().catch(() => undefined)
    work.remove()
  }
}
