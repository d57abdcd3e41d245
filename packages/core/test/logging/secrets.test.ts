import { afterEach, describe, expect, it } from 'vitest'
import { inspect } from 'node:util'
import { Connection, isSecretAttribute, redact, registerSecret } from '../../src/index.js'
import { clearSecrets, registerUrlSecrets } from '../../src/logging/secrets.js'
import { readConnectionAttributes, registerConnectionSecrets } from '../../src/connections/connection.js'
import { prettyLine } from '../../src/logging/logger.js'

afterEach(clearSecrets)

describe('secret masking', () => {
  it('knows which connection attributes are secrets', () => {
    for (const a of [
      'password',
      'PASSPHRASE',
      'api_key',
      'token',
      'sas_token',
      'connection_string',
      'jsondata',
      'client_secret',
    ])
      expect(isSecretAttribute(a)).toBe(true)
    for (const a of ['url', 'host', 'user', 'ppk_path', 'key_file', 'known_hosts', 'port'])
      expect(isSecretAttribute(a)).toBe(false)
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

/** Every piece of `secret` of at least 3 characters. */
function fragments(secret: string): string[] {
  const out = new Set<string>()
  for (let i = 0; i < secret.length; i++) for (let j = i + 3; j <= secret.length; j++) out.add(secret.slice(i, j))
  return [...out]
}

function expectNoFragment(text: string, secret: string, where: string): void {
  const found = fragments(secret).filter((f) => text.includes(f))
  expect(found, `${where}: ${text}`).toEqual([])
}

/** Passwords as people paste them into URLs, not percent-encoded. */
const RAW_PASSWORDS = [
  'p@ss:w/rd%?#',
  'Zq@x:7/ yW%?#é',
  'ü@ñí/cödé:ß#?%20',
  'a"b\\c\'@d{}',
  '%E2%82%AC@/€uro',
  'only@at@signs',
  'tw:o:colons',
]

describe('URL passwords that are not percent-encoded', () => {
  const shapes = (pw: string): string[] => [
    `postgres://postgres:${pw}@127.0.0.1:5432/db`,
    `postgresql+psycopg2://app_user:${pw}@db.internal/db?sslmode=require#frag`,
    `mysql://root:${pw}@[::1]:3306`,
    `sftp://me:${pw}@files.example.com:22/in`,
    `x-custom.v1+tls://svc:${pw}@host`,
    `https://api:${pw}@example.com/v1?q=1`,
  ]

  it('masks the whole password of p@ss:w/rd%?# URLs, whatever a URL parser makes of it (issue 10, defect 13)', () => {
    for (const pw of RAW_PASSWORDS) {
      for (const url of shapes(pw)) {
        clearSecrets()
        registerConnectionSecrets({ ACHVY_CNXN__DB__URL: url })
        const texts = [
          url,
          JSON.stringify({ url }),
          `cannot reach ${url}: refused`,
          `${url} ${url}`,
          JSON.stringify({ msg: `x ${JSON.stringify(url)}` }),
        ]
        let whatwg: string | undefined
        try {
          const u = new URL(url)
          whatwg = u.password
          texts.push(u.href, u.password, decodeURIComponent(u.password))
        } catch {
          // not a WHATWG URL: only the text forms can be shown
        }
        texts.push(pw, encodeURIComponent(pw), JSON.stringify(pw))
        for (const text of texts) expectNoFragment(redact(text), pw, `${url} (WHATWG password ${String(whatwg)})`)
        // What is left around the mask still says where the URL points.
        expect(redact(url)).toContain('@')
        expect(redact(url)).toMatch(/^[a-z0-9+.-]+:\/\/[^:]+:\*\*\*@/)
      }
    }
  })

  it('masks such passwords in any attribute, inside JSONDATA at any depth, in ?password= query parameters and in user:password@host values without a scheme', () => {
    for (const pw of RAW_PASSWORDS) {
      clearSecrets()
      const url = `postgres://u:${pw}@h:5432/db`
      registerConnectionSecrets({
        ACHVY_CNXN__DB__JSONDATA: JSON.stringify({
          connection: { dsn: url },
          replicas: [{ uri: `sftp://r:${pw}x@r1` }],
        }),
        ACHVY_CNXN__BACKUP__HOST: `mysql://b:${pw}y@backup`,
        ACHVY_CNXN__SSH__TARGET: `deploy:${pw}z@10.0.0.1:22`,
        ACHVY_CNXN__Q__URL: `postgres://app@h/db?sslmode=require&password=${pw}q&x=1`,
      })
      for (const [text, secret] of [
        [url, pw],
        [JSON.stringify({ uri: `sftp://r:${pw}x@r1` }), `${pw}x`],
        [`mysql://b:${pw}y@backup`, `${pw}y`],
        [`deploy:${pw}z@10.0.0.1:22`, `${pw}z`],
        [`postgres://app@h/db?sslmode=require&password=${pw}q&x=1`, `${pw}q`],
      ] as const) {
        expectNoFragment(redact(text), secret, text)
      }
    }
  })

  it('masks user:password@ in URLs of any scheme it was never told about, up to the last @', () => {
    expect(redact('see postgres://bob:p@ss:w/rd%?#@db:5432/x now')).toBe('see postgres://bob:***@db:5432/x now')
    expect(redact('{"u":"redis://:tok3n@cache:6379"}')).toBe('{"u":"redis://:***@cache:6379"}')
    expect(redact('ftp://anonymous@host/ and http://host:8080/x')).toBe('ftp://anonymous@host/ and http://host:8080/x')
    expect(redact('a://b://c:d@e')).toBe('a://b:***@e')
  })

  it('masks URL credentials in log lines of 200 KB hostile text in linear time', () => {
    registerSecret('some-registered-secret')
    const inputs = [
      'a'.repeat(200_000),
      `${'a'.repeat(200_000)}://`,
      'a://'.repeat(50_000),
      `x://${':'.repeat(200_000)}`,
      `x://u:${'@'.repeat(200_000)}`,
      `${'x://u:p@h '.repeat(20_000)}`,
    ]
    for (const text of inputs) {
      const started = performance.now()
      redact(text)
      registerUrlSecrets(text.slice(0, 50_000))
      expect(performance.now() - started, `${text.slice(0, 12)}… (${text.length})`).toBeLessThan(3_000)
    }
  })

  it('keeps attribute names from JSONDATA as plain names (no prototype) and masks URL passwords when a connection is shown', () => {
    const attrs = readConnectionAttributes(
      { ACHVY_CNXN__DB__JSONDATA: '{"__proto__": {"url": "postgres://evil"}, "constructor": "c", "toString": "t"}' },
      'db',
    )!
    expect(Object.keys(attrs).sort()).toEqual(['__proto__', 'constructor', 'tostring'])
    expect(attrs.url).toBeUndefined()
    const c = new Connection({
      url: 'postgres://u:p@ss:w/rd%?#@h/db',
      nested: { client_secret: 'zzz-top', list: ['https://a:b@c'] },
    })
    const shown = JSON.stringify(c)
    expectNoFragment(shown, 'p@ss:w/rd%?#', shown)
    expect(shown).not.toContain('zzz-top')
    expect(shown).toContain('https://a:***@c')
  })
})

describe('pretty logs', () => {
  it('formats a pino line for a terminal', () => {
    const line = JSON.stringify({
      level: 30,
      time: Date.UTC(2025, 0, 1, 12, 0, 1),
      pid: 1,
      msg: 'table done',
      table: 'sales',
      rows: 3,
    })
    expect(prettyLine(line)).toBe('12:00:01 INFO  table done  table=sales rows=3\n')
    expect(prettyLine('not json\n')).toBe('not json\n')
  })
})
