import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import * as path from 'node:path'
import { banner, type Sshd } from '../../packages/plugin-sftp/test/helpers/sshd.js'

/** Stops and restarts a test sshd on the same port, with the same host key and config. */
export class SshdControl {
  private restarted: ChildProcess | undefined

  constructor(private readonly sshd: Sshd) {}

  /** Stops the listener and drops every session: the server is gone. */
  async stop(): Promise<void> {
    const pidFile = path.join(this.sshd.dir, 'sshd.pid')
    const pid = this.restarted?.pid ?? (existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').trim()) : 0)
    if (!pid) throw new Error('no sshd pid')
    this.sshd.dropSessions()
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // already gone
    }
    this.sshd.dropSessions()
    const end = Date.now() + 10_000
    while (await banner(this.sshd.port)) {
      if (Date.now() > end) throw new Error('sshd still answers')
      await new Promise((r) => setTimeout(r, 20))
    }
  }

  /** Starts sshd again on the same port. */
  async start(): Promise<void> {
    const child = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', path.join(this.sshd.dir, 'sshd_config')], {
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    this.restarted = child
    let stderr = ''
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
    const end = Date.now() + 10_000
    while (!(await banner(this.sshd.port))) {
      if (child.exitCode !== null || Date.now() > end) throw new Error(`sshd did not come back: ${stderr}`)
      await new Promise((r) => setTimeout(r, 20))
    }
  }

  /** Kills a restarted sshd (the original one is stopped by Sshd.stop()). */
  dispose(): void {
    this.restarted?.kill('SIGKILL')
  }
}
