import { afterAll, describe, expect, it } from 'vitest'
import { writeFileSync } from 'node:fs'
import * as path from 'node:path'
import { loadDocument, resolveSettings, type ConfigSources } from '../../src/config/load-config.js'
import { CORE_SETTINGS } from '../../src/config/settings.js'
import { normalizeArgv } from '../../src/cli/options.js'
import { cleanupTempDirs, tempDir } from '../helpers.js'

afterAll(cleanupTempDirs)

/** Every member name of Object.prototype: `constructor`, `toString`, `__proto__`, `hasOwnProperty`, … */
const PROTO_NAMES = Object.getOwnPropertyNames(Object.prototype)

const DEFAULTS = Object.fromEntries(CORE_SETTINGS.filter((s) => s.default !== undefined).map((s) => [s.key, s.default]))

function resolve(src: Partial<ConfigSources>): { settings: Record<string, unknown>; problems: string[] } {
  const problems: string[] = []
  const full: ConfigSources = {
    flags: { id: 'dl', user: 'dev', datastore: '/nowhere' },
    env: {},
    cwd: tempDir(),
    ...src,
  }
  const settings = resolveSettings(full, loadDocument(full, problems), problems)
  return { settings, problems }
}

/** A YAML map with one entry per name (names quoted, so `__proto__` is a plain key). */
const yamlMap = (names: readonly string[], value: string): string =>
  `{${names.map((n) => `"${n}": ${value}`).join(', ')}}`

describe('config: keys named like Object.prototype members', () => {
  it('config: {__proto__: …} is reported as an unknown setting instead of lending its settings to every lookup', () => {
    for (const text of [
      'config: {__proto__: {id: sneaky, lock_ttl: 1, nonsense: 1}}',
      '{"config": {"__proto__": {"id": "sneaky", "lock_ttl": 1, "nonsense": 1}}}',
    ]) {
      const { settings, problems } = resolve({ flags: { user: 'dev', datastore: '/nowhere' }, configText: text })
      expect(problems).toEqual(['--config: unknown setting config.__proto__'])
      expect(settings.id).not.toBe('sneaky')
      expect(settings.lock_ttl).toBe(60)
    }
  })

  it('reports every Object.prototype member name as an unknown config: key, from YAML and JSON, inline and from a file', () => {
    const cwd = tempDir()
    const yaml = `config: ${yamlMap(PROTO_NAMES, '{interval: 1}')}\n`
    const json = JSON.stringify({ config: Object.fromEntries(PROTO_NAMES.map((n) => [n, { interval: 1 }])) })
    writeFileSync(path.join(cwd, 'c.yaml'), yaml)
    writeFileSync(path.join(cwd, 'c.json'), json)
    for (const [src, where] of [
      [{ configText: yaml }, '--config'],
      [{ configText: json }, '--config'],
      [{ configFile: 'c.yaml', cwd }, 'c.yaml'],
      [{ configFile: 'c.json', cwd }, 'c.json'],
    ] as const) {
      const { settings, problems } = resolve(src)
      expect([...problems].sort()).toEqual(PROTO_NAMES.map((n) => `${where}: unknown setting config.${n}`).sort())
      expect(settings).toMatchObject(DEFAULTS)
    }
  })

  it('keeps known settings working next to Object.prototype member names with scalar values', () => {
    const { settings, problems } = resolve({
      configText: `config: ${yamlMap([...PROTO_NAMES, 'interval', 'concurrency'], '7')}`,
    })
    expect(problems).toHaveLength(PROTO_NAMES.length)
    expect(settings.interval).toBe(7)
    expect(settings.concurrency).toBe(7)
    expect(settings.lock_ttl).toBe(60)
  })

  it('reports Object.prototype member names as unknown top-level keys', () => {
    const { problems } = resolve({ configText: yamlMap(PROTO_NAMES, '{interval: 1}') })
    expect([...problems].sort()).toEqual(
      PROTO_NAMES.map((n) => `--config: unknown top-level key "${n}" (expected tbls and config)`).sort(),
    )
  })

  it('ignores ACHVY_* variables named after Object.prototype members and still reads the declared ones', () => {
    const env: Record<string, string> = Object.create(null) as Record<string, string>
    for (const n of PROTO_NAMES) {
      env[`ACHVY_${n}`] = '1'
      env[`ACHVY_${n.toUpperCase()}`] = '1'
    }
    env.ACHVY_INTERVAL = '7'
    const { settings, problems } = resolve({ env })
    expect(problems).toEqual([])
    expect(settings).toMatchObject({ ...DEFAULTS, interval: 7 })
    // an env object with Object.prototype behind it (like process.env) answers no inherited name either
    const { settings: again } = resolve({ env: { ...env } })
    expect(again).toEqual(settings)
  })

  it('never takes a setting from a flags object through its prototype', () => {
    const flags = Object.assign(Object.create({ interval: 99, id: 'inherited' }) as Record<string, unknown>, {
      user: 'dev',
      datastore: '/nowhere',
    })
    const { settings } = resolve({ flags })
    expect(settings.interval).toBe(60)
    expect(settings.id).not.toBe('inherited')
  })

  it('gives tables named after Object.prototype members their own settings', () => {
    const text = `tbls: ${yamlMap(PROTO_NAMES, '{unique_by: id}')}`
    const problems: string[] = []
    const src: ConfigSources = { flags: {}, env: {}, cwd: tempDir(), configText: text }
    const doc = loadDocument(src, problems)
    expect(problems).toEqual([])
    expect(doc.tables.map((t) => t.name).sort()).toEqual([...PROTO_NAMES].sort())
    for (const t of doc.tables) expect(t.uniqueBy).toEqual(['id'])
  })

  it('passes command-line words named after Object.prototype members through untouched', () => {
    expect(normalizeArgv(['checkpoint', 'set', ...PROTO_NAMES])).toEqual(['checkpoint', 'set', ...PROTO_NAMES])
    expect(normalizeArgv(['-op', 'x', '-up', 'y', '--enabled=z'])).toEqual([
      '--operator-cls',
      'x',
      '--upstream',
      'y',
      '--enable=z',
    ])
  })
})
