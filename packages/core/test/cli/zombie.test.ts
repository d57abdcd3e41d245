import { afterAll, describe, expect, it } from 'vitest'
import { existsSync, readFileSync } from 'node:fs'
import * as path from 'node:path'
import { REPO, cleanupTempDirs, commitRecords, spawnCli, tempDir, waitFor } from '../helpers.js'

afterAll(cleanupTempDirs)

const TRUST = path.join(REPO, 'test/fixtures/dist/trust.js')

describe('a run frozen past its lock TTL (SIGSTOP), on a folder datastore', () => {
  it('thawed while its successor is in flight, says its lock was taken over, commits nothing and leaves the successor its in-flight marker', async () => {
    const ds = tempDir()
    const home = path.join(ds, 'dev', 'z')
    const inflight = path.join(home, '$inflight.json')
    const args = ['start', '-op', `${TRUST}:PausesBeforeCommit`, '--id', 'z', '--lock-ttl', '3']
    const env = { ACHVY_DATASTORE: ds, ACHVY_USER: 'dev', ROWS: '5' }
    const zombieReady = path.join(ds, 'zombie.ready')
    const zombie = spawnCli(args, { env: { ...env, SLEEP_MS: '2000', READY_FILE: zombieReady } })
    await waitFor(() => existsSync(zombieReady), 20_000, 'the first run to write its rows')
    zombie.kill('SIGSTOP')
    const frozenAt = Date.now()
    // The successor pauses in flight too, long enough for the thawed run to try its commit and its marker removal.
    const successorReady = path.join(ds, 'successor.ready')
    let successor
    for (;;) {
      expect(Date.now() - frozenAt).toBeLessThan(30_000)
      await new Promise((r) => setTimeout(r, 1000))
      successor = spawnCli(args, { env: { ...env, SLEEP_MS: '8000', READY_FILE: successorReady } })
      const first = await Promise.race([
        successor.result,
        new Promise<'ready'>((resolve) => {
          const t = setInterval(() => existsSync(successorReady) && (clearInterval(t), resolve('ready')), 25)
        }),
      ])
      if (first === 'ready') break
      expect(first.code, first.stderr).toBe(75)
    }
    const successorMarker = readFileSync(inflight, 'utf8')
    zombie.kill('SIGCONT')
    const thawed = await zombie.result
    expect(thawed.code).toBe(1)
    expect(thawed.stderr).toMatch(/the run lock \S+ was taken over/)
    expect(thawed.stderr).not.toMatch(/was committed by another run/)
    expect(readFileSync(inflight, 'utf8')).toBe(successorMarker)
    expect(commitRecords(path.join(home, '$commits'))).toEqual([])
    const done = await successor.result
    expect(done.code, done.stderr).toBe(0)
    const records = commitRecords(path.join(home, '$commits'))
    expect(records).toHaveLength(1)
    expect(readFileSync(path.join(home, '$checkpoints', 'seq.last'), 'utf8')).toBe('5')
    expect(existsSync(inflight)).toBe(false)
  }, 90_000)
})
