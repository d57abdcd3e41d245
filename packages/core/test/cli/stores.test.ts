import { afterAll, describe, expect, it } from 'vitest'
import { existsSync, readdirSync } from 'node:fs'
import * as path from 'node:path'
import { FIXTURE_OPS, cleanupTempDirs, readTree, runCli, tempDir } from '../helpers.js'

afterAll(cleanupTempDirs)

describe('replaceable store classes', () => {
  it('--task-store-cls hive writes task logs into one Hive-partitioned location', async () => {
    const ds = tempDir()
    const r = await runCli(['start', '-op', `${FIXTURE_OPS}:TwoTables`, '--id', 'dl', '--task-store-cls', 'hive'], {
      env: { ACHVY_DATASTORE: ds, ACHVY_USER: 'dev' },
    })
    expect(r.code).toBe(0)
    const day = new Date().toISOString().slice(0, 10)
    const dir = path.join(ds, '$task_logs/anchovy_user=dev/anchovy_id=dl', `date=${day}`)
    expect(readdirSync(dir).length).toBe(6)
    expect(existsSync(path.join(ds, 'dev/dl/$task_logs'))).toBe(false)
  })

  it('ACHVY_TASK_STORE_CLS takes a module path and class', async () => {
    const ds = tempDir()
    const r = await runCli(['start', '-op', `${FIXTURE_OPS}:TwoTables`, '--id', 'dl'], {
      env: { ACHVY_DATASTORE: ds, ACHVY_USER: 'dev', ACHVY_TASK_STORE_CLS: `${FIXTURE_OPS}:CustomTaskStore` },
    })
    expect(r.code).toBe(0)
    expect([...readTree(path.join(ds, 'custom_logs')).keys()]).toHaveLength(6)
  })

  it('an unknown class is a configuration error naming the setting', async () => {
    const r = await runCli(['start', '-op', `${FIXTURE_OPS}:TwoTables`, '--data-buffer-cls', `${FIXTURE_OPS}:Nope`], {
      env: { ACHVY_DATASTORE: tempDir() },
    })
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/data_buffer_cls: .*has no class Nope/)
  })
})
