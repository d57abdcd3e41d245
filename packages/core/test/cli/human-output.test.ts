import { afterAll, describe, expect, it } from 'vitest'
import { spawn } from 'node:child_process'
import * as path from 'node:path'
import { AnchoviesError } from '../../src/errors.js'
import { formatError, formatSummary, isHumanOutput } from '../../src/cli/human-output.js'
import { BIN, REPO, cleanupTempDirs, runCli, tempDir } from '../helpers.js'

afterAll(cleanupTempDirs)

const FLAKY = `${path.join(REPO, 'test/fixtures/dist/edges.js')}:Flaky`

/** Quotes a word for `sh -c`. */
const sh = (word: string): string => `'${word.replace(/'/g, `'\\''`)}'`

/** Runs the CLI under a pseudo-terminal (util-linux `script`): stdout and stderr are a TTY, both in `output`. */
function runOnTerminal(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; output: string }> {
  const cmd = [process.execPath, BIN, ...args].map(sh).join(' ')
  const child = spawn('script', ['-qec', cmd, '/dev/null'], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ACHVY_LOG_LEVEL: 'info', TERM: 'dumb', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout.on('data', (d: Buffer) => (output += d.toString()))
  child.stderr.on('data', (d: Buffer) => (output += d.toString()))
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, output: output.replace(/\r\n/g, '\n') })))
}

describe('formatError', () => {
  it('prints code: message, then each cause on its own line, stacks only when asked', () => {
    const root = Object.assign(new Error('connect ECONNREFUSED 10.0.0.1:22'), { code: 'ECONNREFUSED' })
    const err = new AnchoviesError('ANCH_ERR_CONNECTION', 'opening connection sftp', {
      cause: new AnchoviesError('ANCH_ERR_SFTP_CONNECT', 'connecting to sftp://host:22', { cause: root }),
    })
    expect(formatError(err)).toBe(
      [
        'ANCH_ERR_CONNECTION: opening connection sftp',
        '  caused by ANCH_ERR_SFTP_CONNECT: connecting to sftp://host:22',
        '    caused by ECONNREFUSED: connect ECONNREFUSED 10.0.0.1:22',
      ].join('\n'),
    )
    expect(formatError(err)).not.toMatch(/\bat /)
    expect(formatError(err, true)).toMatch(/\n {2}at .*human-output\.test/)
  })

  it('stops at a cause cycle and prints plain errors by name', () => {
    const a = new Error('a') as Error & { cause?: unknown }
    const b = new TypeError('b', { cause: a })
    a.cause = b
    expect(formatError(a)).toBe('Error: a\n  caused by TypeError: b')
  })

  it('is for terminals only, and never with --json', () => {
    expect(isHumanOutput(['start'], true)).toBe(true)
    expect(isHumanOutput(['start', '--json'], true)).toBe(false)
    expect(isHumanOutput(['start'], false)).toBe(false)
  })
})

describe('formatSummary', () => {
  it('gives status, duration, each table with rows and status, failures and warnings', () => {
    const text = formatSummary({
      anchovy_id: 'sales',
      anchovy_user: 'dev',
      status: 'DEGRADED',
      exit_code: 0,
      startup_at: '2025-01-01T00:00:00.000Z',
      shutdown_at: '2025-01-01T00:00:02.500Z',
      batches: [
        {
          batch_id: '000',
          status: 'DEGRADED',
          done_tasks: [
            { task_type: 'XOPEN', status: 'OK', data: {} },
            { task_type: 'TABLE', tbl: 'orders', status: 'OK', data: { rows: 1 } },
            {
              task_type: 'TABLE',
              tbl: 'contacts',
              status: 'ERR',
              data: { rows: 5, err_code: 'ANCH_ERR_X', err_msg: 'boom', allowed_failure: true },
            },
          ],
        },
      ],
      unfinished: [{ batch_id: '000', tbls: ['slow'] }],
      warnings: [{ code: 'ANCH_WARN_NO_MATCH', message: '-e x matches no table' }],
    })
    expect(text).toBe(
      [
        'dev/sales: DEGRADED in 2.5s (exit 0)',
        '  orders    OK      1 row',
        '  contacts  ERR     0 rows  ANCH_ERR_X: boom (allowed)',
        '  slow      STOPPED 0 rows',
        'warnings:',
        '  ANCH_WARN_NO_MATCH: -e x matches no table',
        '',
      ].join('\n'),
    )
  })
})

describe('anchovy start on a terminal', () => {
  it('ends with the human summary instead of the results JSON; --json and piped output keep the JSON', async () => {
    const ds = tempDir()
    const args = ['start', '--datastore', ds, '-u', 'dev', '-i', 'h', '-op', FLAKY, '--allow-failures']
    const env = { FAIL_TABLES: 'bad' }
    const tty = await runOnTerminal(args, env)
    expect(tty.code, tty.output).toBe(0)
    expect(tty.output).toMatch(/^dev\/h: DEGRADED in \d+\.\ds \(exit 0\)$/m)
    expect(tty.output).toMatch(/^ {2}good +OK +1 row$/m)
    expect(tty.output).toMatch(
      /^ {2}bad +ERR +0 rows {2}ANCH_ERR_FIXTURE_BROKEN: table bad is broken on purpose \(allowed\)$/m,
    )
    expect(tty.output).not.toContain('"batches"')

    const json = await runOnTerminal([...args, '--json'], env)
    expect(json.code, json.output).toBe(0)
    expect(json.output).toContain('"status": "DEGRADED"')

    const piped = await runCli(args, { env })
    expect(JSON.parse(piped.stdout)).toMatchObject({ status: 'DEGRADED', anchovy_id: 'h' })
  }, 60_000)

  it('prints an error as code: message without a stack, and the piped form is unchanged', async () => {
    const ds = tempDir()
    const args = ['start', '--datastore', ds, '-i', 'h', '-op', FLAKY, '--config-file', path.join(ds, 'missing.yaml')]
    const tty = await runOnTerminal(args)
    expect(tty.code).toBe(2)
    expect(tty.output).toMatch(
      /^anchovy: ANCH_ERR_CONFIG: invalid configuration:\n {2}- .*missing\.yaml: cannot be read \(ENOENT\)$/m,
    )
    expect(tty.output).not.toMatch(/^\s+at /m)
    const piped = await runCli(args)
    expect(piped.code).toBe(2)
    expect(piped.stderr).toMatch(/missing\.yaml: cannot be read \(ENOENT\) \[ANCH_ERR_CONFIG\]$/m)
  }, 60_000)
})
