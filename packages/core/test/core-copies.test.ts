import { spawnSync } from 'node:child_process'
import { cpSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import * as path from 'node:path'
import { pathToFileURL } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { REPO } from './helpers.js'

const CORE = path.join(REPO, 'packages/core')
const work = mkdtempSync(path.join(tmpdir(), 'anchovies-core-copies-'))
afterAll(() => rmSync(work, { recursive: true, force: true }))

/** Imports each module in one fresh node process and returns what it printed. */
function importAll(...entries: string[]): { status: number | null; output: string } {
  const script = `for (const u of ${JSON.stringify(entries.map((e) => pathToFileURL(e).href))}) await import(u); console.log('loaded')`
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })
  return { status: r.status, output: r.stdout + r.stderr }
}

describe('two copies of @anchovies/core', () => {
  // A second copy as npm would nest it under a plugin: the built package in another folder, resolving the same deps.
  const copy = path.join(work, 'copy')
  cpSync(path.join(CORE, 'dist'), path.join(copy, 'dist'), { recursive: true })
  cpSync(path.join(CORE, 'package.json'), path.join(copy, 'package.json'))
  symlinkSync(path.join(REPO, 'node_modules'), path.join(work, 'node_modules'), 'dir')

  it('are detected at import with ANCH_ERR_CORE_COPIES naming both folders and the fix', () => {
    const r = importAll(path.join(CORE, 'dist/index.js'), path.join(copy, 'dist/index.js'))
    expect(r.status).not.toBe(0)
    expect(r.output).toContain('ANCH_ERR_CORE_COPIES')
    expect(r.output).toContain(CORE)
    expect(r.output).toContain(copy)
    expect(r.output).toContain('npm dedupe')
  })

  it('the CLI entry and the package entry of one copy load together', () => {
    const r = importAll(path.join(CORE, 'dist/core-copies.js'), path.join(CORE, 'dist/index.js'))
    expect(r.output).toContain('loaded')
    expect(r.status).toBe(0)
  })
})
