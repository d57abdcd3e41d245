import { createHash, randomBytes } from 'node:crypto'
import { gzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Datastore } from '@anchovies/core'
import { Catalog } from '../../core/src/school/catalog.js'
import { writeSummary, type SummaryRun } from '../../core/src/school/summary.js'
import { BlobDatastore, INLINE_KEY, MAX_INLINE_CHARS } from '../src/blob-datastore.js'
import { Azurite } from './azurite.js'

/** Small documents written with `inline` travel with the listing (blob metadata), checked against the blob's MD5. */
let azurite: Azurite
beforeAll(async () => {
  azurite = await Azurite.start()
})
afterAll(async () => {
  await azurite?.dispose()
})

const open = (): Promise<BlobDatastore> =>
  BlobDatastore.open(azurite.url('inline', `t-${randomBytes(4).toString('hex')}`), { env: {} })

/** The catalog's view of a real datastore, counting the objects it reads one by one. */
function counting(ds: Datastore): { ds: Datastore; reads: string[] } {
  const reads: string[] = []
  const counted = Object.create(ds) as Datastore
  counted.read = (path: string) => {
    reads.push(path)
    return ds.read(path)
  }
  return { ds: counted, reads }
}

const run = (anchovyId: string): SummaryRun => ({
  user: 'dev',
  anchovyId,
  operator: 'Downloader',
  upstream: [],
  service: false,
  taskStore: 'default',
  lockTtlS: 60,
  sessionId: '20260101000000.0000abcd',
  startedAt: new Date(),
})
const OK = { status: 'OK', exit_code: 0, batches: [] }

describe('inline copies in blob listings', () => {
  it('carries exactly the bytes written with inline; plain writes, streams and oversized documents carry none', async () => {
    const ds = await open()
    const doc = JSON.stringify({ hello: 'world', n: [1, 2, 3] })
    await ds.write('a/small.json', doc, { inline: true })
    await ds.write('a/plain.json', doc)
    // incompressible: its copy would not fit the metadata, so the blob is written without one
    const big = randomBytes(8 * 1024).toString('hex')
    await ds.write('a/big.json', big, { inline: true })
    const w = ds.writeStream('a/stream.json')
    w.end(doc)
    await new Promise((res, rej) => w.on('finish', res).on('error', rej))
    const byPath = new Map((await ds.list('a')).map((e) => [e.path, e]))
    expect(byPath.get('a/small.json')!.inline?.toString('utf8')).toBe(doc)
    expect(byPath.get('a/plain.json')!.inline).toBeUndefined()
    expect(byPath.get('a/big.json')!.inline).toBeUndefined()
    expect((await ds.read('a/big.json'))!.toString('utf8')).toBe(big)
    expect(byPath.get('a/stream.json')!.inline).toBeUndefined()
    // a later write without inline replaces the metadata: the old copy never outlives its content
    await ds.write('a/small.json', '{"replaced":true}')
    expect((await ds.list('a')).find((e) => e.path === 'a/small.json')!.inline).toBeUndefined()
  })

  it('drops a copy that is damaged or does not match the blob (Set Blob Metadata apart from the content)', async () => {
    const ds = await open()
    const doc = '{"real":true}'
    await ds.write('d/x.json', doc, { inline: true })
    const blob = ds.blob('d/x.json')
    const props = await blob.getProperties()
    const listed = async (): Promise<Buffer | undefined> => (await ds.list('d'))[0]!.inline
    expect((await listed())!.toString()).toBe(doc)
    // not base64 gzip at all
    await blob.setMetadata({ ...props.metadata, [INLINE_KEY]: 'not*gzip' })
    expect(await listed()).toBeUndefined()
    // a valid copy of other content of the same length: the MD5 the service computed for the blob tells them apart
    await blob.setMetadata({ ...props.metadata, [INLINE_KEY]: gzipSync('{"fake":true}').toString('base64') })
    expect(await listed()).toBeUndefined()
    // a gzip bomb: decoding is bounded by the blob's size
    await blob.setMetadata({ ...props.metadata, [INLINE_KEY]: gzipSync(Buffer.alloc(1 << 20)).toString('base64') })
    expect(await listed()).toBeUndefined()
    expect(gzipSync(Buffer.alloc(1 << 20)).toString('base64').length).toBeLessThan(MAX_INLINE_CHARS)
    expect((await ds.read('d/x.json'))!.toString()).toBe(doc)
  })

  it('lets the school list every anchovy from one listing, and falls back to the blob when a copy is not trusted', async () => {
    const ds = await open()
    for (const id of ['one', 'two', 'three']) {
      await writeSummary(ds, run(id))
      await writeSummary(ds, run(id), OK)
    }
    const { ds: seen, reads } = counting(ds)
    const catalog = new Catalog(seen)
    const first = await catalog.list()
    expect(first.map((e) => [e.id, e.state])).toEqual([
      ['one', 'ok'],
      ['three', 'ok'],
      ['two', 'ok'],
    ])
    expect(reads).toEqual([])

    // A forged copy whose MD5 was forged too (Set Blob Metadata and Set Blob Properties), the same size as the blob:
    // it passes the datastore's check, so the catalog checks it like the file: a summary naming another anchovy than
    // its path is not trusted, and the blob itself is read.
    const blob = ds.blob('$school/dev/two.json')
    const props = await blob.getProperties()
    const real = (await ds.read('$school/dev/two.json'))!
    const head = { format: 1, anchovy_id: 'one', anchovy_user: 'dev', tables: [], pad: '' }
    const sameSize = Buffer.from(
      JSON.stringify({ ...head, pad: 'x'.repeat(real.length - JSON.stringify(head).length) }),
    )
    expect(sameSize.length).toBe(real.length)
    await blob.setMetadata({ ...props.metadata, [INLINE_KEY]: gzipSync(sameSize).toString('base64') })
    await blob.setHTTPHeaders({
      blobContentType: props.contentType ?? 'application/json',
      blobContentMD5: createHash('md5').update(sameSize).digest(),
    })
    expect((await ds.list('$school/dev')).find((e) => e.path.endsWith('two.json'))!.inline).toEqual(sameSize)
    reads.length = 0
    const again = await catalog.list()
    expect(again.map((e) => [e.id, e.state])).toEqual(first.map((e) => [e.id, e.state]))
    expect(again.find((e) => e.id === 'two')).toEqual(first.find((e) => e.id === 'two'))
    expect(reads).toEqual(['$school/dev/two.json'])
  })
})
