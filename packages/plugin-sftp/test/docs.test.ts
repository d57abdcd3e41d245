import { readFileSync } from 'node:fs'
import * as nodePath from 'node:path'
import { describe, expect, it } from 'vitest'
import { TABLE_KEYS } from '../src/config.js'
import { SFTP_ERROR_CODES } from '../src/errors.js'
import { REPO } from './helpers/cli.js'

const read = (rel: string): string => readFileSync(nodePath.join(REPO, rel), 'utf8')

describe('docs stay in sync with the code', () => {
  it('docs/errors.md and the plugin README list every sftp error code', () => {
    const errors = read('docs/errors.md')
    const readme = read('packages/plugin-sftp/README.md')
    for (const code of Object.keys(SFTP_ERROR_CODES)) {
      expect(errors, code).toContain(`| \`${code}\` | sftp |`)
      expect(readme, code).toContain(`| \`${code}\` |`)
    }
  })

  it('the README settings table has a row for every table key the plugin reads', () => {
    const readme = read('packages/plugin-sftp/README.md')
    for (const key of TABLE_KEYS.filter((k) => k !== 'autodiscover' && k !== 'sql_table'))
      expect(readme, key).toContain(`| \`${key}\` |`)
  })
})
