import { randomBytes } from 'node:crypto'
import { readdir, readFile } from 'node:fs/promises'
import { join, relative, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { BlobDatastore } from '../src/blob-datastore.js'
import { Azurite } from './azurite.js'
import { BASIC, anchovy, machine } from './cli.js'

/** A datastore written by the Python implementation (shared with the core's compatibility test). */
const PY_FIXTURE = resolve(import.meta.dirname, '../../../test/fixtures/py-anchovies-datastore/fixture')

let azurite: Azurite
beforeAll(async () => {
  azurite = await Azurite.start()
})
afterAll(async () => {
  await azurite?.dispose()
})

async function walk(dir: string): Promise<string[]> {
  const out: string[] = []
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true }))
    if (e.isFile()) out.push(relative(dir, join(e.parentPath, e.name)).split('\\').join('/'))
  return out.sort()
}

/** Paths with session ids, timestamps and run tags replaced, so two runs can be compared. */
const shape = (paths: string[]): string[] =>
  [
    ...new Set(
      paths.map((p) =>
        p
          .replace(/\d{14}\.[0-9a-f]{8}/g, '<session>')
          .replace(/\/\d{14}\./g, '/<stamp>.')
          .replace(/-\d{3}-\d{4}-\d{4}\.json\.gz$/, '-<file>.json.gz'),
      ),
    ),
  ].sort()

describe('blob and filesystem datastores', () => {
  it('lay out the same files under the prefix for the same runs', async () => {
    const home = await machine()
    const blobUrl = azurite.url('layout', `a/b-${randomBytes(3).toString('hex')}`)
    const fsRoot = join(home, 'ds')
    for (const datastore of [blobUrl, fsRoot]) {
      for (const [op, id, extra] of [
        ['TwoTables', 'dl', []],
        ['FileUploader', 'up', ['-U', 'dl']],
      ] as const) {
        const r = await anchovy(
          ['start', '-op', `${BASIC}:${op}`, '--id', id, '-u', 'dev', '--datastore', datastore, ...extra],
          home,
          { OUT_FILE: join(home, 'out') },
        )
        expect(r.code).toBe(0)
      }
    }
    const onBlob = (await (await BlobDatastore.open(blobUrl, { env: {} })).list('')).map((e) => e.path)
    const onDisk = await walk(fsRoot)
    expect(onBlob.length).toBe(onDisk.length)
    expect(shape(onBlob)).toEqual(shape(onDisk))
    expect(onBlob).toContain('dev/dl/$checkpoints/sales.last')
  })

  it('an uploader reads a datastore the Python implementation wrote, copied into a container under a nested prefix', async () => {
    const url = azurite.url('migrated', 'legacy/anchovies')
    const ds = await BlobDatastore.open(url, { env: {} })
    for (const path of await walk(PY_FIXTURE)) await ds.write(`fixture/${path}`, await readFile(join(PY_FIXTURE, path)))
    const home = await machine()
    const out = join(home, 'out.jsonl')
    const up = [
      'start',
      '-op',
      `${BASIC}:FileUploader`,
      '--id',
      'up',
      '-u',
      'fixture',
      '-U',
      'py_sales',
      '--datastore',
      url,
    ]
    expect((await anchovy(up, home, { OUT_FILE: out })).code).toBe(0)
    const rows = (await readFile(out, 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { table: string })
    expect(rows.filter((r) => r.table === 'py_sales.sales')).toHaveLength(51)
    expect(rows.filter((r) => r.table === 'py_sales.contacts')).toHaveLength(49)
    expect((await anchovy(up, home, { OUT_FILE: out })).code).toBe(0)
    expect((await readFile(out, 'utf8')).split('\n').filter(Boolean)).toHaveLength(100) // nothing twice
    const checkpoints = await anchovy(
      ['checkpoint', 'list', '--id', 'py_sales', '-u', 'fixture', '--datastore', url],
      home,
    )
    expect(checkpoints.stdout).toContain('sales.last_order_num\t')
  })
})
