// Measures the blob datastore against a local Azurite (started here): commit latency, listing, and the
// throughput of a streamed data-file upload compared with the SDK's own uploadData of the same bytes.
//   npx tsc -b packages/plugin-azblob && node packages/plugin-azblob/bench/blob-bench.mjs
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob'
import { BlobDatastore, EMULATOR_ACCOUNT, EMULATOR_KEY } from '../dist/index.js'

const root = resolve(import.meta.dirname, '../../..')
const server = createServer().listen(0, '127.0.0.1')
await once(server, 'listening')
const port = server.address().port
server.close()
const dir = await mkdtemp(join(tmpdir(), 'anchovies-bench-'))
const azurite = spawn(
  process.execPath,
  [
    join(root, 'node_modules/azurite/dist/src/blob/main.js'),
    '--blobHost',
    '127.0.0.1',
    '--blobPort',
    String(port),
    '--location',
    dir,
    '--silent',
    '--skipApiVersionCheck',
    '--disableTelemetry',
  ],
  { stdio: 'ignore' },
)
const accountUrl = `http://127.0.0.1:${port}/${EMULATOR_ACCOUNT}`
const sdk = new BlobServiceClient(accountUrl, new StorageSharedKeyCredential(EMULATOR_ACCOUNT, EMULATOR_KEY))
for (let i = 0; ; i++) {
  try {
    await sdk.getContainerClient('bench').createIfNotExists()
    break
  } catch {
    if (i > 100) throw new Error('azurite did not start')
    await new Promise((r) => setTimeout(r, 100))
  }
}
const ds = await BlobDatastore.open(`${accountUrl}/bench/school`, { env: {} })
const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const time = async (fn) => {
  const t = process.hrtime.bigint()
  await fn()
  return Number(process.hrtime.bigint() - t) / 1e6
}

const record = JSON.stringify({
  seq: 1,
  files: Array.from({ length: 4 }, (_, i) => ({
    table: 't',
    path: `dev/dl/data/t/f${i}.json.gz`,
    rows: 1000,
    bytes: 100000,
  })),
  checkpoints: { 'sales.last': 123 },
})
const commits = []
for (let i = 1; i <= 100; i++)
  commits.push(await time(() => ds.createExclusive(`dev/dl/$commits/${String(i).padStart(12, '0')}.json`, record)))
const conflicts = []
for (let i = 1; i <= 50; i++)
  conflicts.push(await time(() => ds.createExclusive(`dev/dl/$commits/${String(i).padStart(12, '0')}.json`, record)))
const checkpoints = []
for (let i = 0; i < 100; i++) checkpoints.push(await time(() => ds.write('dev/dl/$checkpoints/sales.last', String(i))))
console.log(
  `commit record (createExclusive, ${record.length} B): median ${median(commits).toFixed(1)} ms; lost race (409 + check): ${median(conflicts).toFixed(1)} ms; checkpoint replace (If-Match): ${median(checkpoints).toFixed(1)} ms`,
)

const N = 3000
for (let i = 0; i < N; i += 100)
  await Promise.all(
    Array.from({ length: 100 }, (_, j) => ds.write(`dev/dl/data/sales/${String(i + j).padStart(6, '0')}.json.gz`, 'x')),
  )
await ds.write('dev/dl/data/sales2/decoy.json.gz', 'x')
const listings = []
for (let i = 0; i < 5; i++)
  listings.push(
    await time(async () => {
      const l = await ds.list('dev/dl/data/sales')
      if (l.length !== N) throw new Error(`listed ${l.length}`)
    }),
  )
const raw = []
for (let i = 0; i < 5; i++)
  raw.push(
    await time(async () => {
      let n = 0
      for await (const page of sdk
        .getContainerClient('bench')
        .listBlobsFlat({ prefix: 'school/dev/dl/data/sales/' })
        .byPage({ maxPageSize: 5000 }))
        n += page.segment.blobItems.length
      if (n !== N) throw new Error(`raw listed ${n}`)
    }),
  )
console.log(
  `list of ${N} blobs under a folder: median ${median(listings).toFixed(0)} ms (bare SDK listing without metadata: ${median(raw).toFixed(0)} ms)`,
)

const size = 64 * 1024 * 1024
const data = randomBytes(size)
const chunk = 64 * 1024
const ours = []
const theirs = []
const theirStream = []
for (let round = 0; round < 5; round++) {
  ours.push(
    await time(async () => {
      const out = ds.writeStream(`dev/dl/data/big/${round}.json.gz`)
      for (let o = 0; o < size; o += chunk) if (!out.write(data.subarray(o, o + chunk))) await once(out, 'drain')
      out.end()
      await once(out, 'finish')
    }),
  )
  theirs.push(await time(() => sdk.getContainerClient('bench').getBlockBlobClient(`sdk/${round}`).uploadData(data)))
  theirStream.push(
    await time(async () => {
      const { Readable } = await import('node:stream')
      const source = Readable.from(
        (function* () {
          for (let o = 0; o < size; o += chunk) yield data.subarray(o, o + chunk)
        })(),
      )
      await sdk
        .getContainerClient('bench')
        .getBlockBlobClient(`sdkstream/${round}`)
        .uploadStream(source, 4 * 1024 * 1024, 4)
    }),
  )
}
const mbps = (ms) => (size / 1024 / 1024 / (ms / 1000)).toFixed(0)
console.log(
  `64 MiB data file: writeStream (4 MiB blocks × 4) median ${median(ours).toFixed(0)} ms = ${mbps(median(ours))} MiB/s; SDK uploadStream (4 MiB × 4) ${median(theirStream).toFixed(0)} ms = ${mbps(median(theirStream))} MiB/s; SDK uploadData of the whole buffer (one Put Blob) ${median(theirs).toFixed(0)} ms = ${mbps(median(theirs))} MiB/s`,
)
const reads = []
for (let i = 0; i < 3; i++)
  reads.push(
    await time(async () => {
      let n = 0
      for await (const c of await ds.readStream('dev/dl/data/big/0.json.gz')) n += c.length
      if (n !== size) throw new Error('short read')
    }),
  )
console.log(`64 MiB readStream: median ${median(reads).toFixed(0)} ms = ${mbps(median(reads))} MiB/s`)

// a whole CLI run of the TwoTables fixture (2 tables × ROWS rows): total time, and the XCLOSE task (commit record + checkpoints + tables)
const { execFileSync } = await import('node:child_process')
const bin = join(root, 'packages/core/dist/cli/bin.js')
const op = `${join(root, 'test/fixtures/dist/basic.js')}:TwoTables`
const home = await mkdtemp(join(tmpdir(), 'anchovies-bench-home-'))
for (const [label, datastore] of [
  ['blob', `${accountUrl}/bench/cli`],
  ['filesystem', join(home, 'ds')],
]) {
  for (const rows of [10, 200000]) {
    const t = Date.now()
    const out = execFileSync(
      process.execPath,
      [bin, 'start', '-op', op, '--id', `dl${rows}`, '-u', 'dev', '--datastore', datastore, '--log-level', 'warn'],
      { cwd: home, env: { ...process.env, HOME: home, ROWS: String(rows) } },
    )
    const total = Date.now() - t
    const results = JSON.parse(out.toString())
    const xclose = results.batches[0].done_tasks.find((task) => task.task_type === 'XCLOSE')
    console.log(`CLI run on ${label}, 2 × ${rows} rows: ${total} ms in all, XCLOSE (commit) ${xclose.duration} ms`)
  }
}
await rm(home, { recursive: true, force: true })

azurite.kill('SIGTERM')
await once(azurite, 'exit')
await rm(dir, { recursive: true, force: true })
