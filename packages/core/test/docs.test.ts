import { describe, expect, it } from 'vitest'
import { readFileSync } from 'node:fs'
import * as path from 'node:path'
import YAML from 'yaml'
import { CORE_SETTINGS, ERROR_CODES, parseTable } from '../src/index.js'
import { errorsTable, replaceSection, settingsTable } from '../src/docs.js'
import { REPO } from './helpers.js'

const read = (f: string): string => readFileSync(path.join(REPO, f), 'utf8')

describe('docs', () => {
  it('docs/configuration.md has the settings table generated from the declarations (npm run docs)', () => {
    const doc = read('docs/configuration.md')
    expect(replaceSection(doc, 'settings', settingsTable())).toBe(doc)
    for (const s of CORE_SETTINGS) for (const e of s.env) expect(doc).toContain(e)
  })

  it('docs/errors.md lists every error code (npm run docs)', () => {
    const doc = read('docs/errors.md')
    expect(replaceSection(doc, 'errors', errorsTable())).toBe(doc)
    for (const code of Object.keys(ERROR_CODES)) expect(doc).toContain(code)
  })

  it('config.example.yaml is valid', () => {
    const doc = YAML.parse(read('config.example.yaml')) as {
      config: Record<string, unknown>
      tbls: Record<string, unknown>
    }
    const problems: string[] = []
    for (const [name, raw] of Object.entries(doc.tbls)) parseTable(name, raw, 'config.example.yaml', problems)
    expect(problems).toEqual([])
    const keys = new Set(CORE_SETTINGS.flatMap((s) => [s.key, ...(s.invertedKeys ?? [])]))
    for (const k of Object.keys(doc.config)) expect(keys.has(k)).toBe(true)
  })
})
