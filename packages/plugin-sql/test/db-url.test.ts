import { createRequire } from 'node:module'
import { describe, expect, it } from 'vitest'
import { describeUrl, splitDbUrl } from '../src/db-url.js'
import { knexConfig } from '../src/sql-connection.js'

const require = createRequire(import.meta.url)
const parsePg = (require('pg-connection-string') as { parse: (s: string) => Record<string, unknown> }).parse

/** Passwords as people paste them into URLs, not percent-encoded. */
const RAW_PASSWORDS = [
  'p@ss:w/rd%?#',
  'Zq@x:7/ yW%?#é',
  'ü@ñí/cödé:ß#?',
  'a"b\\c\'@d{}',
  'q@z@w@k',
  'x:y:z:w',
  '/zq7-Vx',
  'zQ9-xK@',
]

function fragments(secret: string): string[] {
  const out: string[] = []
  for (let i = 0; i < secret.length; i++) for (let j = i + 3; j <= secret.length; j++) out.push(secret.slice(i, j))
  return out
}

describe('database URLs with passwords that are not percent-encoded', () => {
  it('gives PostgreSQL the whole password of postgres://user:p@ss:w/rd%?#@host/db, and host, port and database unchanged', () => {
    for (const pw of RAW_PASSWORDS) {
      for (const [url, db] of [
        [`postgres://app:${pw}@127.0.0.1:5432/sales`, 'sales'],
        [`postgresql://app:${pw}@127.0.0.1:5432/sales?application_name=x`, 'sales'],
      ] as const) {
        const { config } = knexConfig(url)
        const c = parsePg((config.connection as { connectionString: string }).connectionString)
        expect([c.user, c.password, c.host, c.port, c.database], url).toEqual(['app', pw, '127.0.0.1', '5432', db])
      }
    }
  })

  it('gives MySQL/MariaDB the whole password too', () => {
    for (const pw of RAW_PASSWORDS) {
      const { config } = knexConfig(`mysql://root:${pw}@127.0.0.1:3307/shop`)
      const c = config.connection as Record<string, unknown>
      expect([c.user, c.password, c.host, c.port, c.database], pw).toEqual(['root', pw, '127.0.0.1', 3307, 'shop'])
    }
  })

  it('still decodes percent-encoded credentials, and reads URLs without credentials or host as before', () => {
    expect(splitDbUrl('postgres://a%40b:Sup3r-s3cret%21pw@h:1/d')).toMatchObject({
      user: 'a@b',
      password: 'Sup3r-s3cret!pw',
      host: 'h:1',
      rest: '/d',
    })
    expect(splitDbUrl('postgres://h/d?x=1')).toMatchObject({
      user: undefined,
      password: undefined,
      host: 'h',
      rest: '/d?x=1',
    })
    expect(splitDbUrl('postgres://u@h')).toMatchObject({ user: 'u', password: undefined, host: 'h', rest: '' })
    expect(splitDbUrl('sqlite:///dir/a@b.db')).toMatchObject({ user: undefined, host: '', rest: '/dir/a@b.db' })
    const c = parsePg(
      (knexConfig('postgres://u:pw@/db?host=/var/run/postgresql').config.connection as { connectionString: string })
        .connectionString,
    )
    expect([c.user, c.password, c.host, c.database]).toEqual(['u', 'pw', '/var/run/postgresql', 'db'])
  })

  it('describes a URL for messages without any piece of its password or query', () => {
    for (const pw of RAW_PASSWORDS) {
      for (const url of [
        `postgres://app:${pw}@db.example.com:5432/sales?password=${pw}`,
        `mysql://root:${pw}@[::1]/x#${pw}`,
        `sqlite+x://u:${pw}@h`,
      ]) {
        const shown = describeUrl(url)
        expect(
          fragments(pw).filter((f) => shown.includes(f)),
          shown,
        ).toEqual([])
        expect(shown).toMatch(/\*\*\*@/)
      }
    }
    expect(describeUrl('postgres://app:p@ss:w/rd%?#@db:5432/sales?sslmode=require')).toBe(
      'postgres://app:***@db:5432/sales',
    )
    expect(describeUrl('user:p@ss:w/rd@host')).toBe('user:…')
    expect(describeUrl('not a url')).toBe('(not a URL)')
  })

  it('refuses a URL it cannot read with ANCH_ERR_SQL_URL, naming where it points and never the password', () => {
    for (const pw of RAW_PASSWORDS) {
      for (const url of [
        `postgres://app:${pw}@bad host:5432/db`,
        `mysql://root:${pw}@h:notaport/x`,
        `app:${pw}@host/db`,
        `nosuch://app:${pw}@h/db`,
      ]) {
        let err: { code?: string; message: string } | undefined
        try {
          knexConfig(url)
        } catch (e) {
          err = e as { code?: string; message: string }
        }
        expect(err?.code, url).toBe('ANCH_ERR_SQL_URL')
        expect(
          fragments(pw).filter((f) => err!.message.includes(f)),
          err!.message,
        ).toEqual([])
      }
    }
  })
})
