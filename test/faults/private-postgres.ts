import { execFileSync } from 'node:child_process'
import { chownSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import * as path from 'node:path'
import { freePort } from '../../packages/plugin-sftp/test/helpers/sshd.js'

const BIN = '/usr/lib/postgresql/15/bin'

/**
 * A PostgreSQL cluster of its own (initdb in a temporary folder, a free port, trust auth), so that a test can crash
 * and restart it without disturbing the suites that share the machine's server.
 */
export class PrivatePostgres {
  private constructor(
    readonly port: number,
    private readonly dir: string,
  ) {}

  static async start(): Promise<PrivatePostgres> {
    const dir = mkdtempSync(path.join(tmpdir(), 'anch-pg-'))
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim())
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim())
    chownSync(dir, uid, gid)
    const pg = new PrivatePostgres(await freePort(), dir)
    pg.as(['initdb', '-D', pg.data, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--no-sync'])
    pg.startServer()
    return pg
  }

  private get data(): string {
    return path.join(this.dir, 'data')
  }

  private as(args: string[]): string {
    const [cmd, ...rest] = args
    return execFileSync('runuser', ['-u', 'postgres', '--', path.join(BIN, cmd!), ...rest], {
      stdio: 'pipe',
      timeout: 60_000,
    }).toString()
  }

  private startServer(): void {
    this.as([
      'pg_ctl',
      '-D',
      this.data,
      '-l',
      path.join(this.dir, 'log'),
      '-w',
      '-t',
      '30',
      '-o',
      `-p ${this.port} -c listen_addresses=127.0.0.1 -k ${this.dir}`,
      'start',
    ])
  }

  /** Crashes the server (`-m immediate`: no clean shutdown, recovery from WAL at start) and starts it again. */
  crashRestart(): void {
    this.as(['pg_ctl', '-D', this.data, '-m', 'immediate', '-w', 'stop'])
    this.startServer()
  }

  /** Stops the server and removes its folder. */
  dispose(): void {
    try {
      this.as(['pg_ctl', '-D', this.data, '-m', 'immediate', '-w', 'stop'])
    } catch {
      // not running
    }
    rmSync(this.dir, { recursive: true, force: true })
  }
}
