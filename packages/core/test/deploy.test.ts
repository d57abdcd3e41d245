import { describe, expect, it } from 'vitest'
import { existsSync, readFileSync } from 'node:fs'
import * as path from 'node:path'
import YAML from 'yaml'
import type { Command } from 'commander'
import { buildProgram } from '../src/cli/program.js'
import { normalizeArgv } from '../src/cli/options.js'
import { REPO, runCli, tempDir } from './helpers.js'

const deploy = (f: string): string => readFileSync(path.join(REPO, 'docs/deploy', f), 'utf8')

/** Parses an anchovy command line with the real CLI definition, without running it. */
async function parses(args: string[]): Promise<string> {
  const program = await buildProgram()
  let ran = ''
  const stub = (cmd: Command): void => {
    for (const sub of cmd.commands) {
      sub.action((...a: unknown[]) => {
        ran = sub.name()
        // `start` passes unknown words on to the operator: the recipes must use core flags only
        if (ran === 'start' && (a[0] as string[]).length) ran = `start with unknown ${(a[0] as string[]).join(' ')}`
      })
      stub(sub)
    }
  }
  stub(program)
  program.configureOutput({ writeErr: () => undefined, writeOut: () => undefined })
  await program.parseAsync(normalizeArgv(args), { from: 'user' })
  return ran
}

describe('deployment recipes', () => {
  it('Dockerfile: multi-stage, non-root, copies files that exist, and its entrypoint runs the CLI', async () => {
    const text = deploy('Dockerfile')
    const instructions = text
      .replace(/\\\n/g, ' ')
      .split('\n')
      .filter((l) => l.trim() && !l.trim().startsWith('#'))
      .map((l) => /^([A-Z]+)\s+(.*)$/.exec(l.trim()))
    for (const i of instructions) expect(i, 'every line is an instruction').not.toBeNull()
    const known = new Set(['FROM', 'WORKDIR', 'RUN', 'COPY', 'ENV', 'USER', 'VOLUME', 'ENTRYPOINT', 'CMD'])
    for (const i of instructions) expect(known.has(i![1]!)).toBe(true)
    expect(instructions.filter((i) => i![1] === 'FROM')).toHaveLength(2)
    const user = instructions.filter((i) => i![1] === 'USER').at(-1)![2]
    expect(user).not.toMatch(/^(root|0)$/)
    for (const i of instructions.filter((x) => x![1] === 'COPY' && !x![2]!.startsWith('--from'))) {
      for (const src of i![2]!.split(/\s+/).slice(0, -1)) expect(existsSync(path.join(REPO, src)), src).toBe(true)
    }
    const entry = JSON.parse(instructions.find((i) => i![1] === 'ENTRYPOINT')![2]!) as string[]
    const cmd = JSON.parse(instructions.find((i) => i![1] === 'CMD')![2]!) as string[]
    expect(entry[0]).toBe('node')
    const bin = entry[1]!.replace(/^\/app\//, '')
    expect(existsSync(path.join(REPO, bin))).toBe(true)
    const r = await runCli(cmd)
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/Usage: anchovy/)
  })

  it('Kubernetes: the CronJob and Deployment command lines parse, and the probes run the healthcheck', async () => {
    const docs = YAML.parseAllDocuments(deploy('kubernetes.yaml')).map((d) => d.toJS() as Record<string, any>)
    expect(docs.map((d) => d.kind)).toEqual(['CronJob', 'Deployment'])
    const cron = docs[0]!.spec.jobTemplate.spec.template.spec.containers[0]
    const svc = docs[1]!.spec.template.spec.containers[0]
    expect(await parses(cron.args)).toBe('start')
    expect(await parses(svc.args)).toBe('start')
    expect(svc.args).toContain('-S')
    const ds = tempDir()
    for (const probe of [svc.livenessProbe, svc.readinessProbe]) {
      const [node, bin, ...args] = probe.exec.command as string[]
      expect(node).toBe('node')
      expect(bin).toBe('/app/packages/core/dist/cli/bin.js')
      expect(await parses(args)).toBe('healthcheck')
      const r = await runCli(
        args.filter((a, i, all) => a !== '--connections' && all[i - 1] !== '-o' && a !== '-o'),
        { env: { ACHVY_DATASTORE: ds } },
      )
      expect(r.code).toBe(1)
      expect(r.stdout).toMatch(/^unhealthy: no run of prod\/sales_db is recorded/)
    }
  })

  it('Kubernetes Indexed Job: workers numbered by JOB_COMPLETION_INDEX, as many as the completions, and a healthcheck over every worker', async () => {
    const cron = YAML.parse(deploy('kubernetes-indexed-job.yaml')) as Record<string, any>
    expect(cron.kind).toBe('CronJob')
    const job = cron.spec.jobTemplate.spec
    expect(job.completionMode).toBe('Indexed')
    const container = job.template.spec.containers[0]
    expect(await parses(container.args)).toBe('start')
    const env = new Map((container.env as { name: string; value?: string }[]).map((e) => [e.name, e.value]))
    expect(Number(env.get('ACHVY_WORKERS'))).toBe(job.completions)
    expect(job.parallelism).toBe(job.completions)
    const [, , ...probe] = container.livenessProbe.exec.command as string[]
    expect(await parses(probe)).toBe('healthcheck')
    const ds = tempDir()
    // The index Kubernetes gives each pod is taken as the worker number; one beyond the count is refused.
    const bad = await runCli(
      ['start', '-op', `${path.join(REPO, 'test/fixtures/dist/basic.js')}:TwoTables`, '--id', 'erp', '--datastore', ds],
      { env: { ACHVY_WORKERS: '3', JOB_COMPLETION_INDEX: '3' } },
    )
    expect(bad.code).toBe(2)
    expect(bad.stderr + bad.stdout).toContain('worker_num: 3 is not below workers (3)')
    const runs = await Promise.all(
      [0, 1, 2].map((i) =>
        runCli(
          [
            'start',
            '-op',
            `${path.join(REPO, 'test/fixtures/dist/basic.js')}:TwoTables`,
            '--id',
            'erp',
            '--prod',
            '--datastore',
            ds,
          ],
          { env: { ACHVY_WORKERS: '3', JOB_COMPLETION_INDEX: String(i) } },
        ),
      ),
    )
    for (const r of runs) expect(r.code, r.stderr).toBe(0)
    const healthy = await runCli(probe, { env: { ACHVY_DATASTORE: ds } })
    expect(healthy.stdout).toMatch(/^healthy/)
    const missing = await runCli(
      probe.map((a, i) => (probe[i - 1] === '--workers' ? '4' : a)),
      { env: { ACHVY_DATASTORE: ds } },
    )
    expect(missing.stdout).toMatch(/^unhealthy: no run of prod\/erp worker 3 of 4/)
  })

  it('EventBridge → ECS: the schedule and the container command parse', async () => {
    const schedule = JSON.parse(deploy('eventbridge-ecs.json')) as {
      ScheduleExpression: string
      Target: { Input: string }
    }
    expect(schedule.ScheduleExpression).toMatch(/^(rate|cron)\(/)
    const input = JSON.parse(schedule.Target.Input) as { containerOverrides: { command: string[] }[] }
    expect(await parses(input.containerOverrides[0]!.command)).toBe('start')
  })

  it('crontab: five schedule fields and anchovy command lines that parse', async () => {
    const lines = deploy('crontab')
      .split('\n')
      .filter((l) => l.trim() && !l.startsWith('#'))
    expect(lines.length).toBeGreaterThan(0)
    for (const line of lines) {
      const fields = line.trim().split(/\s+/)
      for (const f of fields.slice(0, 5)) expect(f).toMatch(/^[\d*/,-]+$/)
      const cmd = /anchovy (.*?) >>/.exec(line)![1]!.split(/\s+/)
      expect(await parses(cmd)).toBe('start')
    }
  })
})
