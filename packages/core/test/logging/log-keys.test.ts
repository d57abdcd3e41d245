import { afterAll, describe, expect, it } from 'vitest'
import * as path from 'node:path'
import { uniqueKeys } from '../../src/logging/logger.js'
import { REPO, cleanupTempDirs, runCli, tempDir } from '../helpers.js'

afterAll(cleanupTempDirs)

const EDGES = path.join(REPO, 'test/fixtures/dist/edges.js')

/**
 * Every object key of a JSON text that appears twice in the same object, as `path.key` (JSON.parse would hide
 * them: it keeps the last). A small recursive-descent reader of what pino writes.
 */
export function duplicateKeys(text: string): string[] {
  let i = 0
  const dups: string[] = []
  const ws = (): void => {
    while (/\s/.test(text[i] ?? '')) i++
  }
  const str = (): string => {
    const startAt = i
    i++
    while (text[i] !== '"') i += text[i] === '\\' ? 2 : 1
    i++
    return JSON.parse(text.slice(startAt, i)) as string
  }
  const value = (at: string): void => {
    ws()
    const c = text[i]
    if (c === '{') {
      i++
      const seen = new Set<string>()
      ws()
      if (text[i] === '}') return void i++
      for (;;) {
        ws()
        const key = str()
        if (seen.has(key)) dups.push(`${at}${key}`)
        seen.add(key)
        ws()
        i++ // :
        value(`${at}${key}.`)
        ws()
        if (text[i++] === '}') return
      }
    } else if (c === '[') {
      i++
      ws()
      if (text[i] === ']') return void i++
      for (;;) {
        value(at)
        ws()
        if (text[i++] === ']') return
      }
    } else if (c === '"') str()
    else while (i < text.length && !/[,}\]\s]/.test(text[i]!)) i++
  }
  value('')
  return dups
}

describe('log lines never repeat a key', () => {
  it('the reader finds a repeated key that JSON.parse hides', () => {
    expect(duplicateKeys('{"a":1,"table":"demo_sftp.sales","b":{"x":[1,{"y":2,"y":3}]},"table":"sales"}')).toEqual([
      'b.x.y',
      'table',
    ])
    expect(duplicateKeys(uniqueKeys('{"a":1,"table":"demo_sftp.sales","table":"sales"}'))).toEqual([])
    expect(JSON.parse(uniqueKeys('{"a":1,"table":"demo_sftp.sales","table":"sales"}'))).toEqual({
      a: 1,
      table: 'sales',
    })
  })

  it('every log line of a real run (a source logging its own table field, a failing table, a supervised run) has unique keys', async () => {
    const ds = tempDir()
    const env = { ACHVY_LOG_LEVEL: 'debug', FAIL_TABLES: 'bad' }
    const runs = [
      await runCli(['start', '--datastore', ds, '-u', 'dev', '-i', 'k', '-op', `${EDGES}:Flaky`, '--allow-failures'], {
        env,
      }),
      await runCli(
        ['start', '--datastore', ds, '-u', 'dev', '-i', 'k', '-op', `${EDGES}:Flaky`, '-t', '60', '--allow-failures'],
        { env },
      ),
    ]
    let lines = 0
    for (const r of runs) {
      const json = r.stderr.split('\n').filter((l) => l.startsWith('{'))
      expect(
        json.some((l) => l.includes('"msg":"reading"')),
        r.stderr,
      ).toBe(true)
      for (const line of json) {
        lines++
        expect(duplicateKeys(line), line).toEqual([])
      }
    }
    expect(lines).toBeGreaterThan(5)
  }, 60_000)
})
