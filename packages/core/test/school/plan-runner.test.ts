import { afterAll, describe, expect, it } from 'vitest'
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import * as path from 'node:path'
import { parsePlan } from '../../src/school/plan.js'
import { FIXTURE_OPS, cleanupTempDirs, runCli, spawnCli, tempDir, waitFor } from '../helpers.js'
import { SECRET } from './school-fixture.js'

afterAll(cleanupTempDirs)

interface StepResult {
  step: string
  status: string
  exit_code: number | null
  started_at: string | null
  ended_at: string | null
  rows: number
  tables: { name: string; rows: number }[]
  error: string | null
}

/** Every step result of the plan's only run, by step name. */
function stepResults(ds: string, plan: string): Map<string, StepResult> {
  const runs = readdirSync(path.join(ds, '$plans', plan)).filter((f) => f !== 'latest.json')
  expect(runs).toHaveLength(1)
  const dir = path.join(ds, '$plans', plan, runs[0]!)
  const out = new Map<string, StepResult>()
  for (const f of readdirSync(dir))
    if (f !== 'plan_results.json')
      out.set(f.slice(0, -5), JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as StepResult)
  return out
}

const m = `${FIXTURE_OPS}`

describe('anchovy school run --plan', () => {
  it('runs a five-step plan in upstream order, the pair in parallel, skips the dependant of the failed step and exits 1', async () => {
    const ds = tempDir('anchovies-plan-')
    const planFile = path.join(ds, 'five.yaml')
    writeFileSync(
      planFile,
      [
        'steps:',
        // listed out of order on purpose: the runner orders by -U
        `  - start -op ${m}:FileUploader --id up -U dl`,
        `  - run: start -op ${m}:Relay --id after_up -U up`,
        `  - start -op ${m}:Relay --id relay -U dl -U dl2`,
        `  - start -op ${m}:TwoTables --id dl`,
        `  - run: [start, -op, "${m}:NeedsWeb", --id, dl2]`,
        '    env: { ACHVY_CNXN__WEB__URL: "https://admin:' + SECRET + '@api.example.com/" }',
      ].join('\n'),
    )
    const env = { ACHVY_DATASTORE: ds, ACHVY_USER: 'dev', OUT_FILE: path.join(ds, 'out.jsonl'), FAIL_UPLOAD: 'sales' }
    const r = await runCli(['school', 'run', '--plan', planFile, '--concurrency', '3', '--continue-on-error'], { env })
    expect(r.code, r.stderr).toBe(1)
    const steps = stepResults(ds, 'five')
    expect(Object.fromEntries([...steps].map(([k, v]) => [k, v.status]))).toEqual({
      dl: 'OK',
      dl2: 'OK',
      relay: 'OK',
      up: 'ERR',
      after_up: 'SKIPPED',
    })
    const t = (s: string, f: 'started_at' | 'ended_at'): number => Date.parse(steps.get(s)![f]!)
    expect(t('dl2', 'started_at')).toBeLessThan(t('dl', 'ended_at')) // the pair overlapped
    expect(t('relay', 'started_at')).toBeGreaterThanOrEqual(Math.max(t('dl', 'ended_at'), t('dl2', 'ended_at')))
    expect(t('up', 'started_at')).toBeGreaterThanOrEqual(t('dl', 'ended_at'))
    expect(steps.get('up')).toMatchObject({ exit_code: 1, error: 'table dl.sales: upload of sales failed on purpose' })
    expect(steps.get('after_up')!.error).toMatch(/step up failed/)
    expect(steps.get('dl')).toMatchObject({ exit_code: 0, rows: 6 })
    expect(steps.get('relay')!.tables.map((x) => x.name)).toEqual(['dl.contacts', 'dl.sales', 'dl2.pages'])
    // the summary table, and the results, never hold the step's secret
    expect(r.stdout).toMatch(/^STEP\s+STATUS\s+EXIT\s+TIME\s+ROWS\s+ERROR/)
    expect(r.stdout).toMatch(/after_up\s+SKIPPED/)
    expect(r.stdout).toContain('plan five run ')
    const everything = readdirSync(path.join(ds, '$plans/five'), { recursive: true })
      .map(String)
      .filter((f) => f.endsWith('.json'))
    for (const f of everything) expect(readFileSync(path.join(ds, '$plans/five', f), 'utf8')).not.toContain(SECRET)
    expect(JSON.parse(readFileSync(path.join(ds, '$plans/five/latest.json'), 'utf8'))).toMatchObject({
      plan: 'five',
      status: 'ERR',
    })
  })

  it('starts nothing new after a failure without --continue-on-error', async () => {
    const ds = tempDir('anchovies-plan-')
    const bad = path.join(ds, 'bad.yaml')
    writeFileSync(
      bad,
      `name: failfast\nsteps:\n  - start -op ${m}:NoSuchClass --id broken\n  - start -op ${m}:TwoTables --id dl2\n`,
    )
    const r2 = await runCli(['school', 'run', '-p', bad, '-j', '1', '--json'], {
      env: { ACHVY_DATASTORE: ds, ACHVY_USER: 'dev' },
    })
    expect(r2.code).toBe(1)
    const res = JSON.parse(r2.stdout) as { status: string; steps: StepResult[] }
    expect(res.steps.map((s) => [s.step, s.status, s.exit_code])).toEqual([
      ['broken', 'ERR', 2],
      ['dl2', 'SKIPPED', null],
    ])
    expect(res.steps[0]!.error).toMatch(/NoSuchClass/)
  })

  it('stops cleanly on SIGTERM: the running step stops, the rest are not started, results are written', async () => {
    const ds = tempDir('anchovies-plan-')
    const planFile = path.join(ds, 'svc.yaml')
    writeFileSync(
      planFile,
      `steps:\n  - start -op ${m}:Ticker --id tick -S --interval 0.2\n  - start -op ${m}:Relay --id after -U tick\n`,
    )
    const child = spawnCli(['school', 'run', '--plan', planFile], { env: { ACHVY_DATASTORE: ds, ACHVY_USER: 'dev' } })
    await waitFor(() => existsSync(path.join(ds, '$school/dev/tick.json')), 30_000, 'the service step to start')
    child.kill('SIGTERM')
    const r = await child.result
    expect(r.code).toBe(1)
    const steps = stepResults(ds, 'svc')
    expect(steps.get('tick')!.status).toBe('INTERRUPTED')
    expect(steps.get('after')!.status).toBe('INTERRUPTED')
    expect(existsSync(path.join(ds, 'dev/tick/$lock'))).toBe(false)
    expect(JSON.parse(readFileSync(path.join(ds, '$plans/svc/latest.json'), 'utf8'))).toMatchObject({
      status: 'INTERRUPTED',
    })
  })

  it('refuses a plan with a cycle, a duplicate step or an unknown command, naming every problem', async () => {
    expect(() => parsePlan('steps:\n  - start --id a -U b\n  - start --id b -U a\n', 'p')).toThrow(
      /cycle: (a -> b -> a|b -> a -> b)/,
    )
    expect(() =>
      parsePlan('steps:\n  - start --id a\n  - start --id a\n  - healthcheck --id c\n  - run: start\n', 'p'),
    ).toThrow(/two steps have this name.*|.*must be "start/)
    const plan = parsePlan(
      'name: n\nsteps:\n  - "start -op \'x y\' --id=a"\n  - { name: b, run: "start --id b", after: a }\n',
      'p',
    )
    expect(plan.steps.map((s) => [s.name, s.args, s.after])).toEqual([
      ['a', ['start', '-op', 'x y', '--id=a'], []],
      ['b', ['start', '--id', 'b'], ['a']],
    ])
  })
})
