import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Azurite } from './azurite.js'
import { BASIC, anchovy, machine } from './cli.js'

let azurite: Azurite
beforeAll(async () => {
  azurite = await Azurite.start()
})
afterAll(async () => {
  await azurite?.dispose()
})

describe('anchovy checkpoint history and restore on a blob datastore', () => {
  it('lists every committed value with its commit and restores one as a new commit', async () => {
    const ds = azurite.url('history', `h-${randomBytes(3).toString('hex')}`)
    const home = await machine()
    const args = (...a: string[]): string[] => [...a, '--id', 'dl', '-u', 'dev', '--datastore', ds]
    for (let i = 0; i < 2; i++)
      expect((await anchovy(args('start', '-op', `${BASIC}:TwoTables`), home, { ROWS: '3' })).code).toBe(0)
    const history = await anchovy(args('checkpoint', 'history', 'sales.last', '--json'), home)
    expect(history.code).toBe(0)
    const changes = JSON.parse(history.stdout) as { seq: number; value: unknown; batch_id: string }[]
    expect(changes.map((c) => [c.seq, c.value, c.batch_id])).toEqual([
      [1, 3, '000'],
      [2, 6, '000'],
    ])
    const restored = await anchovy(args('checkpoint', 'restore', 'sales.last', '--at', '1'), home)
    expect(restored.code).toBe(0)
    expect((await anchovy(args('checkpoint', 'get', 'sales.last'), home)).stdout).toBe('3\n')
    const text = await anchovy(args('checkpoint', 'history', 'sales.last'), home)
    expect(
      text.stdout
        .trim()
        .split('\n')
        .map((l) => [l.split('\t')[0], l.split('\t')[3]]),
    ).toEqual([
      ['1', '3'],
      ['2', '6'],
      ['3', '3'],
    ])
  }, 180_000)
})
