import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import * as path from 'node:path'
import { FIXTURE_OPS, runCli, spawnCli, tempDir, waitFor } from '../helpers.js'

export const op = (name: string): string[] => ['-op', `${FIXTURE_OPS}:${name}`]

/** A password that must never appear in anything the school shows. */
export const SECRET = 'hunter2-Sup3rSecret'

/** A school built from real runs, and the service anchovy still running in it. */
export interface School {
  readonly ds: string
  readonly env: Record<string, string>
  readonly ticker: ReturnType<typeof spawnCli>
  stop(): Promise<void>
}

/**
 * Builds a school in a fresh filesystem datastore: `dl` (downloader) feeds `up` (uploader, its `sales` upload
 * fails) and `relay` (ok); `old` succeeded two days ago (its summary is back-dated: stale); `web` failed with a
 * connection URL holding a password in its error; `tick` runs as a service while the test looks.
 */
export async function buildSchool(): Promise<School> {
  const ds = tempDir('anchovies-school-')
  const env = {
    ACHVY_DATASTORE: ds,
    ACHVY_USER: 'dev',
    OUT_FILE: path.join(ds, 'out.jsonl'),
    ACHVY_CNXN__WEB__URL: `https://admin:${SECRET}@api.example.com/v1`,
  }
  const run = async (args: string[], extra: Record<string, string> = {}, code = 0): Promise<void> => {
    const r = await runCli(['start', ...args], { env: { ...env, ...extra } })
    if (r.code !== code) throw new Error(`anchovy start ${args.join(' ')} exited ${r.code}: ${r.stderr}`)
  }
  await run([...op('TwoTables'), '--id', 'dl'])
  await Promise.all([
    run([...op('FileUploader'), '--id', 'up', '-U', 'dl'], { FAIL_UPLOAD: 'sales' }, 1),
    run([...op('Relay'), '--id', 'relay', '-U', 'dl']),
    run([...op('TwoTables'), '--id', 'old']),
    run([...op('NeedsWeb'), '--id', 'web'], { FAIL_PAGES: '1' }, 1),
  ])
  backdate(ds, 'old', 2 * 86_400_000)
  const ticker = spawnCli(['start', ...op('Ticker'), '--id', 'tick', '-S', '--interval', '0.2', '--lock-ttl', '30'], {
    env,
  })
  const lock = path.join(ds, 'dev/tick/$lock')
  await waitFor(
    () => existsSync(lock) && existsSync(path.join(ds, '$school/dev/tick.json')),
    30_000,
    'the service to take its lock',
  )
  return {
    ds,
    env,
    ticker,
    async stop() {
      if (ticker.exitCode === null) ticker.kill('SIGTERM')
      await ticker.result
    },
  }
}

/** Moves every time in an anchovy's summary `ms` into the past (a run that happened then). */
export function backdate(ds: string, id: string, ms: number): void {
  const file = path.join(ds, '$school/dev', `${id}.json`)
  const shift = (iso: unknown): unknown =>
    typeof iso === 'string' ? new Date(Date.parse(iso) - ms).toISOString() : iso
  const s = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown> & {
    last_run: Record<string, unknown>
    history: Record<string, unknown>[]
  }
  for (const r of [s.last_run, ...s.history]) {
    r.started_at = shift(r.started_at)
    r.ended_at = shift(r.ended_at)
  }
  s.last_ok_at = shift(s.last_ok_at)
  writeFileSync(file, JSON.stringify(s))
}
