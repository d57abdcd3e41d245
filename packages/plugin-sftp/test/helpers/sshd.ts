import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import {
  chmodSync,
  existsSync,
  lchownSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  writeFileSync,
} from 'node:fs'
import * as net from 'node:net'
import * as nodePath from 'node:path'
import { remove, tempDir } from './cli.js'
import { rsaTestKey } from './keys.js'

/** The test login (created once per machine; CI runs as root). */
export const SFTP_USER = 'anchovy_sftp'
/** Its password (also grepped for in every output by the secrets test). */
export const SFTP_PASSWORD = 'Tr0ut-Sardine-9f3c!pass'
/** The passphrase of the encrypted test keys. */
export const KEY_PASSPHRASE = 'herring-passphrase-77'

/** A running OpenSSH server for one test file. */
export interface Sshd {
  readonly port: number
  /** The served folder (owned by the test user): put files here. */
  readonly root: string
  /** The temp folder holding config and keys. */
  readonly dir: string
  /** `SHA256:…` fingerprint of the host key, and its public key line. */
  readonly hostFingerprint: string
  readonly hostPublicLine: string
  /** A known_hosts file with the host key for 127.0.0.1 on this port. */
  readonly knownHosts: string
  /** Private keys: OpenSSH ed25519 without passphrase; OpenSSH ed25519 with KEY_PASSPHRASE; PuTTY v2 RSA with KEY_PASSPHRASE. */
  readonly keys: { readonly plain: string; readonly encrypted: string; readonly ppk: string }
  /** `sftp://user:password@127.0.0.1:port/<root>` (or another port, e.g. a proxy's). */
  uri(options?: { password?: string | null; port?: number }): string
  /** Kills the per-connection sshd processes (drops every session; the listener stays). */
  dropSessions(): void
  stop(): Promise<void>
}

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port
      s.close(() => resolve(port))
    })
    s.on('error', reject)
  })
}

function ensureUser(): void {
  const exists = (): boolean => {
    try {
      execFileSync('id', ['-u', SFTP_USER], { stdio: 'ignore' })
      return true
    } catch {
      return false
    }
  }
  if (!exists()) {
    try {
      execFileSync('useradd', ['-M', '-d', '/nonexistent', '-s', '/bin/sh', SFTP_USER], { stdio: 'pipe' })
    } catch (err) {
      if (!exists()) throw err
    }
  }
  const shadow = readFileSync('/etc/shadow', 'utf8')
  const line = shadow.split('\n').find((l) => l.startsWith(`${SFTP_USER}:`)) ?? ''
  if (!line.split(':')[1] || line.split(':')[1]!.startsWith('!') || line.split(':')[1] === '*') {
    execFileSync('chpasswd', { input: `${SFTP_USER}:${SFTP_PASSWORD}\n`, stdio: ['pipe', 'ignore', 'pipe'] })
  }
}

function uidGid(): [number, number] {
  return [
    Number(execFileSync('id', ['-u', SFTP_USER]).toString().trim()),
    Number(execFileSync('id', ['-g', SFTP_USER]).toString().trim()),
  ]
}

/** Chowns `path` (recursively) to the test user so that sftp can delete and move files. */
export function giveToUser(path: string): void {
  const [uid, gid] = uidGid()
  // lstat/lchown: links (tests create loops) are chowned themselves, never followed.
  const walk = (p: string): void => {
    lchownSync(p, uid, gid)
    if (lstatSync(p).isDirectory()) for (const n of readdirSync(p)) walk(nodePath.join(p, n))
  }
  walk(path)
}

function keygen(args: string[]): void {
  execFileSync('ssh-keygen', ['-q', ...args], { stdio: 'pipe' })
}

/**
 * Starts `/usr/sbin/sshd -D -e` on a free 127.0.0.1 port with a throwaway host key, password and key
 * authentication for SFTP_USER and the internal-sftp subsystem. Throws (the tests fail, never skip) when sshd
 * is missing or does not come up.
 */
export async function startSshd(): Promise<Sshd> {
  if (process.getuid?.() !== 0)
    throw new Error('the sftp integration tests need root (to run sshd and create the test user)')
  if (!existsSync('/usr/sbin/sshd')) throw new Error('/usr/sbin/sshd is missing: install openssh-server (.ci/run does)')
  ensureUser()
  const dir = tempDir('sshd')
  chmodSync(dir, 0o755)
  const root = nodePath.join(dir, 'root')
  mkdirSync(root)
  giveToUser(root)
  keygen(['-t', 'ed25519', '-N', '', '-f', nodePath.join(dir, 'host_ed25519')])
  keygen(['-t', 'ed25519', '-N', '', '-f', nodePath.join(dir, 'id_plain')])
  keygen(['-t', 'ed25519', '-N', KEY_PASSPHRASE, '-f', nodePath.join(dir, 'id_encrypted')])
  const rsa = rsaTestKey()
  writeFileSync(nodePath.join(dir, 'id_rsa.ppk'), rsa.ppk(KEY_PASSPHRASE), { mode: 0o600 })
  writeFileSync(
    nodePath.join(dir, 'authorized_keys'),
    [
      readFileSync(nodePath.join(dir, 'id_plain.pub'), 'utf8').trim(),
      readFileSync(nodePath.join(dir, 'id_encrypted.pub'), 'utf8').trim(),
      rsa.publicLine,
    ].join('\n') + '\n',
    { mode: 0o644 },
  )
  const hostPublicLine = readFileSync(nodePath.join(dir, 'host_ed25519.pub'), 'utf8').trim()
  const hostFingerprint = execFileSync('ssh-keygen', ['-lf', nodePath.join(dir, 'host_ed25519.pub')])
    .toString()
    .split(/\s+/)[1]!
  const port = await freePort()
  const knownHosts = nodePath.join(dir, 'known_hosts')
  writeFileSync(knownHosts, `[127.0.0.1]:${port} ${hostPublicLine.split(' ').slice(0, 2).join(' ')}\n`)
  const config = nodePath.join(dir, 'sshd_config')
  writeFileSync(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${nodePath.join(dir, 'host_ed25519')}`,
      `PidFile ${nodePath.join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${nodePath.join(dir, 'authorized_keys')}`,
      'StrictModes no',
      'UsePAM no',
      'PasswordAuthentication yes',
      'KbdInteractiveAuthentication no',
      'PubkeyAuthentication yes',
      'PermitRootLogin no',
      `AllowUsers ${SFTP_USER}`,
      'Subsystem sftp internal-sftp',
      'ForceCommand internal-sftp',
      'MaxStartups 100:30:200',
      'MaxAuthTries 10',
      'LogLevel ERROR',
      '',
    ].join('\n'),
  )
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 })
  const child: ChildProcess = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', config], {
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let stderr = ''
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve))
  const deadline = Date.now() + 10_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`sshd exited with ${child.exitCode}: ${stderr}`)
    if (await banner(port)) break
    if (Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`sshd did not come up on port ${port}: ${stderr}`)
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  const children = (): number[] => {
    const out: number[] = []
    for (const name of readdirSync('/proc')) {
      if (!/^\d+$/.test(name)) continue
      try {
        const stat = readFileSync(`/proc/${name}/stat`, 'utf8')
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
        if (ppid === child.pid) out.push(Number(name))
      } catch {
        // the process ended meanwhile
      }
    }
    return out
  }
  const killTree = (pid: number): void => {
    for (const name of readdirSync('/proc')) {
      if (!/^\d+$/.test(name)) continue
      try {
        const stat = readFileSync(`/proc/${name}/stat`, 'utf8')
        if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) killTree(Number(name))
      } catch {
        // ended
      }
    }
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // ended
    }
  }
  return {
    port,
    root,
    dir,
    hostFingerprint,
    hostPublicLine,
    knownHosts,
    keys: {
      plain: nodePath.join(dir, 'id_plain'),
      encrypted: nodePath.join(dir, 'id_encrypted'),
      ppk: nodePath.join(dir, 'id_rsa.ppk'),
    },
    uri({ password = SFTP_PASSWORD, port: p = port } = {}) {
      return `sftp://${SFTP_USER}${password === null ? '' : `:${encodeURIComponent(password)}`}@127.0.0.1:${p}${root}`
    },
    dropSessions() {
      for (const pid of children()) killTree(pid)
    },
    async stop() {
      for (const pid of children()) killTree(pid)
      child.kill('SIGTERM')
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))])
      if (child.exitCode === null) child.kill('SIGKILL')
      remove(dir)
    },
  }
}

/** True when an SSH server answers on the port with its banner. */
export function banner(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1')
    const done = (ok: boolean): void => {
      s.destroy()
      resolve(ok)
    }
    s.setTimeout(1000, () => done(false))
    s.on('data', (d: Buffer) => done(d.toString().startsWith('SSH-')))
    s.on('error', () => done(false))
  })
}

/** A TCP proxy in front of sshd that can cut every connection, e.g. after some bytes went to the client. */
export interface CutProxy {
  readonly port: number
  /** Cut all current connections once `bytes` more bytes have gone server → client (once). */
  cutAfter(bytes: number): void
  readonly cuts: number
  close(): Promise<void>
}

/** Starts a proxy to `127.0.0.1:target`. */
export async function startCutProxy(target: number): Promise<CutProxy> {
  const sockets = new Set<net.Socket>()
  let budget = Infinity
  let cuts = 0
  const server = net.createServer((client) => {
    const upstream = net.connect(target, '127.0.0.1')
    sockets.add(client)
    sockets.add(upstream)
    const drop = (): void => {
      client.destroy()
      upstream.destroy()
      sockets.delete(client)
      sockets.delete(upstream)
    }
    client.on('error', drop).on('close', drop)
    upstream.on('error', drop).on('close', drop)
    client.pipe(upstream)
    upstream.on('data', (d: Buffer) => {
      budget -= d.length
      if (budget <= 0) {
        budget = Infinity
        cuts++
        for (const s of [...sockets]) s.destroy()
        sockets.clear()
        return
      }
      client.write(d)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as net.AddressInfo).port,
    cutAfter(bytes) {
      budget = bytes
    },
    get cuts() {
      return cuts
    },
    close() {
      for (const s of sockets) s.destroy()
      return new Promise((resolve) => server.close(() => resolve()))
    },
  }
}

/** A TCP proxy in front of sshd that counts the bytes sent to the client and can slow them down or hold them. */
export interface MeterProxy {
  readonly port: number
  /** Bytes sent server → client so far (SSH framing included: a little more than the file bytes carried). */
  readonly bytesDown: number
  /** Past `bytes` sent to the client, send at most `bytesPerSecond` (0 holds everything from then on). */
  slowAfter(bytes: number, bytesPerSecond: number): void
  close(): Promise<void>
}

/** Starts a metering proxy to `127.0.0.1:target`. */
export async function startMeterProxy(target: number): Promise<MeterProxy> {
  const sockets = new Set<net.Socket>()
  const pumps = new Set<() => void>()
  let down = 0
  let limitAt = Infinity
  let rate = 0
  let credit = 0
  const tick = setInterval(() => {
    if (down < limitAt || rate === 0) return
    credit = Math.min(credit + rate / 10, rate)
    for (const pump of pumps) pump()
  }, 100)
  const server = net.createServer((client) => {
    const upstream = net.connect(target, '127.0.0.1')
    sockets.add(client)
    sockets.add(upstream)
    const queue: Buffer[] = []
    const pump = (): void => {
      while (queue.length) {
        const allowance = down < limitAt ? limitAt - down : Math.floor(credit)
        if (allowance <= 0) {
          upstream.pause()
          return
        }
        const head = queue[0]!
        const n = Math.min(head.length, allowance)
        if (down >= limitAt) credit -= n
        client.write(head.subarray(0, n))
        down += n
        if (n === head.length) queue.shift()
        else queue[0] = head.subarray(n)
      }
      upstream.resume()
    }
    pumps.add(pump)
    const drop = (): void => {
      pumps.delete(pump)
      client.destroy()
      upstream.destroy()
      sockets.delete(client)
      sockets.delete(upstream)
    }
    client.on('error', drop).on('close', drop)
    upstream.on('error', drop).on('close', drop)
    client.pipe(upstream)
    upstream.on('data', (d: Buffer) => {
      queue.push(d)
      pump()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as net.AddressInfo).port,
    get bytesDown() {
      return down
    },
    slowAfter(bytes, bytesPerSecond) {
      limitAt = bytes
      rate = bytesPerSecond
    },
    close() {
      clearInterval(tick)
      for (const s of sockets) s.destroy()
      return new Promise((resolve) => server.close(() => resolve()))
    },
  }
}
