// What the sftp benchmarks share: the generated CSV, a free loopback port, waiting for sshd's banner, a local sshd,
// timing a child process with its peak RSS, medians.
import { execFileSync, spawn } from 'node:child_process'
import { createWriteStream, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import * as net from 'node:net'
import * as path from 'node:path'

/** The CSV's columns, in file order. */
export const COLUMNS = ['id', 'customer', 'amount', 'created_at', 'day', 'country', 'note']

/** Writes `rows` generated orders as CSV to `file`. */
export async function generate(file, rows) {
  const out = createWriteStream(file)
  const countries = ['FR', 'DE', 'US', 'GB', 'ES', 'IT', 'NL', 'BE']
  let chunk = `${COLUMNS.join(',')}\n`
  for (let i = 0; i < rows; i++) {
    const d = new Date(Date.UTC(2025, 0, 1) + i * 1000).toISOString()
    chunk += `${i},customer-${(i * 7919) % 100000},${((i % 100000) / 100).toFixed(2)},${d.slice(0, 19).replace('T', ' ')},${d.slice(0, 10)},${countries[i % 8]},"note for order ${i}, ok"\n`
    if (chunk.length > 1 << 20) {
      if (!out.write(chunk)) await new Promise((r) => out.once('drain', r))
      chunk = ''
    }
  }
  out.end(chunk)
  await new Promise((r) => out.on('finish', r))
}

export function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })
}

export async function waitForPort(port) {
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1')
      s.on('data', () => (s.destroy(), resolve(true)))
      s.on('error', () => resolve(false))
    })
    if (ok) return
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error('sshd did not start')
}

/**
 * Starts sshd on a free loopback port with a throwaway host key, key login as root (the benchmark runs as root).
 * Returns the port, the client key's path, the host's public key and the child process (kill it when done).
 */
export async function startSshd(dir) {
  const key = path.join(dir, 'id_ed25519')
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'host')])
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key])
  writeFileSync(path.join(dir, 'authorized_keys'), readFileSync(`${key}.pub`))
  const port = await freePort()
  writeFileSync(
    path.join(dir, 'sshd_config'),
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${path.join(dir, 'host')}`,
      `PidFile ${path.join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
      'StrictModes no',
      'UsePAM no',
      'PasswordAuthentication no',
      'PermitRootLogin prohibit-password',
      'Subsystem sftp internal-sftp',
      'LogLevel ERROR',
      '',
    ].join('\n'),
  )
  mkdirSync('/run/sshd', { recursive: true })
  const sshd = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', path.join(dir, 'sshd_config')], { stdio: 'ignore' })
  await waitForPort(port)
  return { port, key, hostKey: readFileSync(path.join(dir, 'host.pub'), 'utf8').trim(), sshd }
}

/**
 * Runs a command, timing it and sampling from /proc every 20 ms its peak RSS (VmHWM) and its CPU time (user +
 * system, all threads, not its children; the last sample may miss up to 20 ms).
 */
export function measure(cmd, argv, env, input, cwd) {
  return new Promise((resolve, reject) => {
    const started = performance.now()
    const child = spawn(cmd, argv, {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
      cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    let peakKb = 0
    let cpuMs = 0
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    const sample = () => {
      try {
        const m = /VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))
        if (m) peakKb = Math.max(peakKb, Number(m[1]))
        // Fields 14 and 15 (utime, stime) in clock ticks (100 a second on Linux), after the parenthesised name.
        const stat = readFileSync(`/proc/${child.pid}/stat`, 'utf8')
        const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
        cpuMs = Math.max(cpuMs, (Number(f[11]) + Number(f[12])) * 10)
      } catch {}
    }
    const timer = setInterval(sample, 20)
    child.stdin.end(input ?? '')
    child.on('error', reject)
    child.on('exit', (code) => {
      clearInterval(timer)
      const ms = performance.now() - started
      if (code !== 0) reject(new Error(`${cmd} exited with ${code}: ${stderr.slice(0, 2000)}`))
      else resolve({ ms, peakKb, cpuMs, stdout, stderr })
    })
  })
}

/** The median of `values` (the mean of the middle two for an even count). */
export function median(values) {
  const s = [...values].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2
}
