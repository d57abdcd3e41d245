import { afterAll, describe, expect, it } from 'vitest'
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import * as path from 'node:path'
import { pathToFileURL } from 'node:url'
import { MAX_TIMER_SECONDS, MIN_LOCK_TTL_SECONDS } from '../../src/config/settings.js'
import { FIXTURE_OPS, REPO, cleanupTempDirs, runCli, spawnCli, tempDir, waitFor } from '../helpers.js'

afterAll(cleanupTempDirs)

const op = (name: string): string[] => ['-op', `${FIXTURE_OPS}:${name}`]

describe('lock_ttl the heartbeat cannot hold', () => {
  it('rejects --lock-ttl 1 (the heartbeat interval would equal the TTL), naming the setting and the minimum', async () => {
    const ds = tempDir()
    const r = await runCli(['start', ...op('TwoTables'), '--id', 'dl', '--lock-ttl', '1'], {
      env: { ACHVY_DATASTORE: ds, ACHVY_USER: 'dev' },
    })
    expect(r.code).toBe(2)
    expect(r.stderr).toContain(
      `option for lock_ttl: must be at least ${MIN_LOCK_TTL_SECONDS} (seconds: the lock is renewed every lock_ttl/3 seconds`,
    )
    expect(readdirSync(ds)).toEqual([])
  })

  it('rejects a TTL below the minimum or beyond a Node timer from flag, env and config alike', async () => {
    const below = String(MIN_LOCK_TTL_SECONDS - 0.1)
    for (const [args, env, message] of [
      [['--lock-ttl', below], {}, `option for lock_ttl: must be at least ${MIN_LOCK_TTL_SECONDS}`],
      [['--lock-ttl', '0'], {}, `option for lock_ttl: must be at least ${MIN_LOCK_TTL_SECONDS}`],
      [['--lock-ttl', '-5'], {}, `option for lock_ttl: must be at least ${MIN_LOCK_TTL_SECONDS}`],
      [[], { ACHVY_LOCK_TTL: '2' }, `ACHVY_LOCK_TTL: must be at least ${MIN_LOCK_TTL_SECONDS}`],
      [['-c', 'config: {lock_ttl: 1}'], {}, `--config: config.lock_ttl: must be at least ${MIN_LOCK_TTL_SECONDS}`],
      [
        ['-c', '{"config": {"lock_ttl": 0.5}}'],
        {},
        `--config: config.lock_ttl: must be at least ${MIN_LOCK_TTL_SECONDS}`,
      ],
      [['--lock-ttl', String(MAX_TIMER_SECONDS + 1)], {}, `option for lock_ttl: must be at most ${MAX_TIMER_SECONDS}`],
      [[], { ACHVY_LOCK_TTL: '1e10' }, `ACHVY_LOCK_TTL: must be at most ${MAX_TIMER_SECONDS}`],
      // the other timers overflow the same way: a longer delay fires after 1 ms
      [['-t', '3000000'], {}, `option for execution_timeout: must be at most ${MAX_TIMER_SECONDS}`],
      [[], { ACHVY_INTERVAL: '1e9' }, `ACHVY_INTERVAL: must be at most ${MAX_TIMER_SECONDS}`],
      [
        ['-c', 'config: {abort_grace: 9999999}'],
        {},
        `--config: config.abort_grace: must be at most ${MAX_TIMER_SECONDS}`,
      ],
      [[], { ACHVY_PROGRESS_INTERVAL: '5e6' }, `ACHVY_PROGRESS_INTERVAL: must be at most ${MAX_TIMER_SECONDS}`],
    ] as const) {
      const ds = tempDir()
      const r = await runCli(['start', ...op('TwoTables'), '--id', 'dl', ...args], {
        env: { ACHVY_DATASTORE: ds, ACHVY_USER: 'dev', ...env },
      })
      expect(r.code, `${args.join(' ')} ${JSON.stringify(env)}: ${r.stderr}`).toBe(2)
      expect(r.stderr).toContain(message)
      expect(readdirSync(ds)).toEqual([])
    }
  })

  it(`never lets a second run take over a live holder's lock at the minimum TTL (${MIN_LOCK_TTL_SECONDS} s)`, async () => {
    const ds = tempDir()
    const env = { ACHVY_DATASTORE: ds, ACHVY_USER: 'dev' }
    const ttl = String(MIN_LOCK_TTL_SECONDS)
    const holdSeconds = 4 * MIN_LOCK_TTL_SECONDS
    // The holder's xopen hook sleeps in 100 ms slices that block its event loop (like a synchronous call or a long
    // parse step), with 10 ms breaks, until -t ends the batch: heartbeats are late, as in a busy run. At a TTL of
    // 1 s such a holder loses its lock within seconds; at the minimum it must keep it.
    const dir = tempDir()
    const core = pathToFileURL(path.join(REPO, 'packages/core/dist/index.js')).href
    writeFileSync(
      path.join(dir, 'sleepy.mjs'),
      `import { Downloader, onTask, source } from ${JSON.stringify(core)}
export class Sleepy extends Downloader {
  async sleep() {
    const cell = new Int32Array(new SharedArrayBuffer(4))
    for (;;) {
      Atomics.wait(cell, 0, 0, 100)
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
  }
  async *rows() {
    yield { i: 1 }
  }
}
onTask('xopen')(Sleepy.prototype, 'sleep')
source('t')(Sleepy.prototype, 'rows')
`,
    )
    const holder = spawnCli(
      [
        'start',
        '-op',
        './sleepy.mjs:Sleepy',
        '--id',
        'one',
        '--lock-ttl',
        ttl,
        '-t',
        String(holdSeconds),
        '--abort-grace',
        '1',
      ],
      { env, cwd: dir },
    )
    const lockFile = path.join(ds, 'dev/one/$lock')
    await waitFor(() => existsSync(lockFile), 15_000, 'the lock')
    // Watch the heartbeat's age the way a second run sees it.
    let oldest = 0
    const heartbeats = new Set<string>()
    const watch = setInterval(() => {
      try {
        const { heartbeat } = JSON.parse(readFileSync(lockFile, 'utf8')) as { heartbeat: string }
        heartbeats.add(heartbeat)
        oldest = Math.max(oldest, Date.now() - Date.parse(heartbeat))
      } catch {
        // released at the end
      }
    }, 20)
    try {
      const until = Date.now() + (holdSeconds - 2) * 1000
      let attempts = 0
      while (Date.now() < until) {
        const second = await runCli(['start', ...op('TwoTables'), '--id', 'one', '--lock-ttl', ttl], { env })
        attempts++
        expect(second.code, `attempt ${attempts}, heartbeat up to ${oldest} ms old: ${second.stderr}`).toBe(75)
        expect(second.stderr).toContain(`(pid ${holder.pid}, since`)
      }
      const first = await holder.result
      // 124: ended by its own timeout; a holder whose lock had been taken over exits 1 (lost the run lock).
      expect(first.code, first.stderr).toBe(124)
      expect(first.stderr).not.toContain('lost the run lock')
      expect(attempts).toBeGreaterThanOrEqual(3)
      expect(heartbeats.size).toBeGreaterThanOrEqual(3)
      expect(oldest).toBeLessThan(MIN_LOCK_TTL_SECONDS * 1000)
      expect(existsSync(path.join(ds, 'dev/one/$commits'))).toBe(false)
    } finally {
      clearInterval(watch)
      holder.kill('SIGKILL')
    }
  })
})
