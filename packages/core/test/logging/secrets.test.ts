import { afterEach, describe, expect, it } from 'vitest'
import { inspect } from 'node:util'
import { Connection, isSecretAttribute, redact, registerSecret } from '../../src/index.js'
import { clearSecrets, registerUrlSecrets } from '../../src/logging/secrets.js'
import { registerConnectionSecrets } from '../../src/connections/connection.js'
import { prettyLine } from '../../src/logging/logger.js'

afterEach(clearSecrets)

describe('secret masking', () => {
  it('knows which connection attributes are secrets', () => {
    for (const a of ['password', 'PASSPHRASE', 'api_key', 'token', 'sas_token', 'connection_string', 'jsondata', 'client_secret']) expect(isSecretAttribute(a)).toBe(true)
    for (const a of ['url', 'host', 'user', 'ppk_path', 'key_file', 'known_hosts', 'port']) expect(isSecretAttribute(a)).toBe(false)
  })

  it('masks registered values, their JSON-escaped and URL-encoded forms, and URL passwords', () => {
    registerSecret('p"a/ss word')
    expect(redact('x p"a/ss word y')).toBe('x *** y')
    expect(redact(JSON.stringify({ v: 'p"a/ss word' }))).toBe('{"v":"***"}')
    expect(redact(`u=${encodeURIComponent('p"a/ss word')}`)).toBe('u=***')
    expect(redact('postgres://bob:hunter2@db:5432/x')).toBe('postgres://bob:***@db:5432/x')
  })

  it('registers secrets from ACHVY_CNXN__* variables, including JSONDATA fields and URL passwords', () => {
    registerConnectionSecrets({
      ACHVY_CNXN__DB__PASSWORD: 'dbpass-1234',
      ACHVY_CNXN__API__JSONDATA: JSON.stringify({ token: 'tok-5678', url: 'https://u:urlpass-9@h' }),
      ACHVY_CNXN__URI: 'sftp://me:sftppass-0@host',
      ACHVY_CNXN__HOST: 'example.com',
    })
    const text = 'dbpass-1234 tok-5678 urlpass-9 sftppass-0 example.com'
    expect(redact(text)).toBe('*** *** *** *** example.com')
    registerUrlSecrets('x')
  })

  it('masks secret attributes when a connection is logged or inspected', () => {
    const c = new Connection({ url: 'https://h', password: 'hunter2-long' })
    expect(JSON.stringify(c)).toBe('{"url":"https://h","password":"***"}')
    expect(inspect(c)).not.toContain('hunter2-long')
  })
})

describe('pretty logs', () => {
  it('formats a pino line for a terminal', () => {
    const line = JSON.stringify({ level: 30, time: Date.UTC(2025, 0, 1, 12, 0, 1), pid: 1, msg: 'table done', table: 'sales', rows: 3 })
    expect(prettyLine(line)).toBe('12:00:01 INFO  table done  table=sales rows=3\n')
    expect(prettyLine('not json\n')).toBe('not json\n')
  })
})
