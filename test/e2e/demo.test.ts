import { describe, expect, it } from 'vitest'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')

describe('npm run demo', () => {
  it('downloads the bundled files into a local datastore and uploads them into SQLite, once', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'anchovies-demo-'))
    try {
      const run = (): string => {
        const r = spawnSync(process.execPath, [path.join(repo, 'scripts/demo.mjs')], {
          cwd: repo,
          env: { ...process.env, DEMO_DIR: dir },
          encoding: 'utf8',
        })
        expect(r.status, r.stderr).toBe(0)
        return r.stdout
      }
      const first = run()
      expect(first).toMatch(/sales: OK, 2656 rows/)
      expect(first).toMatch(/contacts: OK, 800 rows/)
      expect(first).toMatch(/demo_sftp\.sales: OK, 2656 rows/)
      expect(first).toMatch(/sales: 2656 current rows/)
      expect(first).toMatch(/contacts: 800 current rows/)
      expect(first).toMatch(/sqlite3 .*demo\.db 'select order_num/)
      const second = run()
      expect(second).toMatch(/sales: OK, 0 rows/)
      expect(second).toMatch(/demo_sftp\.sales: OK, 0 rows/)
      expect(second).toMatch(/sales: 2656 current rows/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }, 60_000)
})
