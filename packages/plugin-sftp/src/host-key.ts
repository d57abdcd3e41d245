import { createHash, createHmac } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { SftpError } from './errors.js'

/** Decides whether the server's host key (the raw SSH public key blob) is the expected one. */
export interface HostKeyPolicy {
  /** `SHA256:…` fingerprints accepted (from HOST_KEY or KNOWN_HOSTS). */
  readonly fingerprints: ReadonlySet<string>
  /** Host key algorithms to ask for, so the server presents a key we know; undefined = any. */
  readonly algorithms: string[] | undefined
  /** Where the expectation came from, for error messages. */
  readonly source: string
}

/** The OpenSSH-style fingerprint of a public key blob: `SHA256:<base64 without padding>`. */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`
}

const ALGORITHMS: Record<string, string[]> = {
  'ssh-ed25519': ['ssh-ed25519'],
  'ssh-rsa': ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'],
  'ecdsa-sha2-nistp256': ['ecdsa-sha2-nistp256'],
  'ecdsa-sha2-nistp384': ['ecdsa-sha2-nistp384'],
  'ecdsa-sha2-nistp521': ['ecdsa-sha2-nistp521'],
  'ssh-dss': ['ssh-dss'],
}

function algorithmsFor(types: Iterable<string>): string[] | undefined {
  const out = new Set<string>()
  for (const t of types) {
    const a = ALGORITHMS[t]
    if (!a) return undefined
    for (const x of a) out.add(x)
  }
  return out.size ? [...out] : undefined
}

/**
 * Parses `HOST_KEY`: comma-separated `SHA256:<base64>` fingerprints (as `ssh-keygen -lf` prints them) and/or
 * public key lines (`ssh-ed25519 AAAA…`, as in `ssh-keyscan` output).
 */
export function hostKeyPolicy(value: string): HostKeyPolicy {
  const fingerprints = new Set<string>()
  const types: string[] = []
  let onlyKeys = true
  for (const part of value
    .split(/[,\n]/)
    .map((s) => s.trim())
    .filter(Boolean)) {
    const key = /^(?:\S+\s+)?((?:ssh|ecdsa)-[\w@.-]+)\s+([A-Za-z0-9+/]+={0,2})/.exec(part)
    if (key) {
      fingerprints.add(fingerprint(Buffer.from(key[2]!, 'base64')))
      types.push(key[1]!)
      continue
    }
    onlyKeys = false
    const fp = /^(?:SHA256:)?([A-Za-z0-9+/]{43})=?$/.exec(part)
    if (!fp) {
      throw new SftpError(
        'ANCH_ERR_SFTP_CONFIG',
        `HOST_KEY: ${JSON.stringify(part.slice(0, 80))} is not a SHA256 fingerprint (SHA256:…, from ssh-keygen -lf) or a public key line`,
      )
    }
    fingerprints.add(`SHA256:${fp[1]}`)
  }
  if (fingerprints.size === 0) throw new SftpError('ANCH_ERR_SFTP_CONFIG', 'HOST_KEY is empty')
  return { fingerprints, algorithms: onlyKeys ? algorithmsFor(types) : undefined, source: 'HOST_KEY' }
}

/**
 * Reads the keys of `host:port` from an OpenSSH known_hosts file (plain or hashed host names, `[host]:port`
 * for other ports, `@revoked` honoured, `@cert-authority` lines ignored). A host with no entry is an error:
 * like `StrictHostKeyChecking yes`.
 */
export function knownHostsPolicy(file: string, host: string, port: number): HostKeyPolicy {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    throw new SftpError(
      'ANCH_ERR_SFTP_CONFIG',
      `KNOWN_HOSTS: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
      { cause: err },
    )
  }
  const names = port === 22 ? [host, `[${host}]:22`] : [`[${host}]:${port}`]
  const fingerprints = new Set<string>()
  const revoked = new Set<string>()
  const types: string[] = []
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (!line || line.startsWith('#')) continue
    let fields = line.split(/\s+/)
    let marker: string | undefined
    if (fields[0]!.startsWith('@')) [marker, ...fields] = fields
    if (marker === '@cert-authority' || fields.length < 3) continue
    const [hosts, type, b64] = fields as [string, string, string]
    if (!hosts.split(',').some((pattern) => matchesHost(pattern, names))) continue
    const fp = fingerprint(Buffer.from(b64, 'base64'))
    if (marker === '@revoked') revoked.add(fp)
    else {
      fingerprints.add(fp)
      types.push(type)
    }
  }
  for (const fp of revoked) fingerprints.delete(fp)
  if (fingerprints.size === 0) {
    throw new SftpError(
      'ANCH_ERR_SFTP_HOST_KEY',
      `KNOWN_HOSTS: ${file} has no key for ${names[0]} (add it with: ssh-keyscan -p ${port} ${host} >> ${file}, after checking the fingerprint)`,
    )
  }
  return { fingerprints, algorithms: algorithmsFor(types), source: `KNOWN_HOSTS ${file}` }
}

function matchesHost(pattern: string, names: readonly string[]): boolean {
  if (pattern.startsWith('|1|')) {
    const [, , salt, hash] = pattern.split('|')
    if (!salt || !hash) return false
    return names.some((n) => createHmac('sha1', Buffer.from(salt, 'base64')).update(n).digest('base64') === hash)
  }
  if (pattern.startsWith('!')) return false
  const re = new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
    'i',
  )
  return names.some((n) => re.test(n))
}
