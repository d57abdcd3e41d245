import { createHmac, randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import * as nodePath from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { fingerprint, hostKeyPolicy, knownHostsPolicy } from '../src/host-key.js'
import { remove, tempDir } from './helpers/cli.js'

const blob = Buffer.concat([
  Buffer.from([0, 0, 0, 11]),
  Buffer.from('ssh-ed25519'),
  Buffer.from([0, 0, 0, 32]),
  randomBytes(32),
])
const line = `ssh-ed25519 ${blob.toString('base64')}`
let dir: string | undefined
afterEach(() => dir && remove(dir))

describe('host key verification settings', () => {
  it('accepts SHA256 fingerprints (with or without prefix) and public key lines', () => {
    const fp = fingerprint(blob)
    expect(hostKeyPolicy(fp).fingerprints.has(fp)).toBe(true)
    expect(hostKeyPolicy(fp.slice(7)).fingerprints.has(fp)).toBe(true)
    const fromLine = hostKeyPolicy(`${line} comment`)
    expect(fromLine.fingerprints.has(fp)).toBe(true)
    expect(fromLine.algorithms).toEqual(['ssh-ed25519'])
    expect(() => hostKeyPolicy('MD5:aa:bb')).toThrow('not a SHA256 fingerprint')
  })

  it('reads plain and hashed known_hosts entries for the port, honours @revoked, and fails for an unknown host', () => {
    dir = tempDir('kh')
    const file = nodePath.join(dir, 'known_hosts')
    const salt = randomBytes(20)
    const hashed = `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update('[sftp.example.com]:2222').digest('base64')}`
    writeFileSync(file, `# comment\nother.example.com ${line}\n${hashed} ${line}\n`)
    expect(knownHostsPolicy(file, 'sftp.example.com', 2222).fingerprints.has(fingerprint(blob))).toBe(true)
    expect(() => knownHostsPolicy(file, 'sftp.example.com', 22)).toThrow('has no key for sftp.example.com')
    writeFileSync(file, `[h]:2222 ${line}\n@revoked [h]:2222 ${line}\n`)
    expect(() => knownHostsPolicy(file, 'h', 2222)).toThrow('has no key')
  })
})
