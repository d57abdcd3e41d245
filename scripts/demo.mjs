// The embedded demo: sftp.CsvDownloader reads the bundled CSV files from a local folder into a local datastore,
// then sql.Uploader loads them into a SQLite file. Run with: npm run demo
import { spawnSync } from 'node:child_process'
import { mkdirSync } from 'node:fs'
import * as path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { createRequire } from 'node:module'

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const work = process.env.DEMO_DIR ? path.resolve(process.env.DEMO_DIR) : path.join(repo, '.anchovies-demo')
const datastore = path.join(work, 'datastore')
const dbFile = path.join(work, 'demo.db')
const bin = path.join(repo, 'packages/core/dist/cli/bin.js')
mkdirSync(work, { recursive: true })

function anchovy(args, env) {
  console.log(`\n$ anchovy ${args.join(' ')}`)
  const r = spawnSync(process.execPath, [bin, ...args], {
    cwd: repo,
    env: {
      ...process.env,
      ACHVY_DATASTORE: datastore,
      ACHVY_USER: 'demo',
      ACHVY_LOG_LEVEL: process.env.ACHVY_LOG_LEVEL ?? 'warn',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
  })
  if (r.status !== 0) {
    console.error(r.stdout)
    console.error(`anchovy exited ${r.status}`)
    process.exit(r.status ?? 1)
  }
  const results = JSON.parse(r.stdout)
  for (const b of results.batches) {
    for (const t of b.done_tasks.filter((t) => t.task_type === 'TABLE'))
      console.log(`  ${t.tbl}: ${t.status}, ${t.data.rows ?? 0} rows`)
  }
}

anchovy(['start', '-op', 'sftp.CsvDownloader', '--id', 'demo_sftp', '--config-file', 'examples/demo/config.yaml'], {
  ACHVY_CNXN__URI: pathToFileURL(path.join(repo, 'examples/demo/files')).href,
})
anchovy(['start', '-op', 'sql.Uploader', '--id', 'demo_db', '-U', 'demo_sftp'], {
  ACHVY_CNXN__DB__URL: `sqlite:///${dbFile}`,
})

const require = createRequire(path.join(repo, 'packages/plugin-sql/package.json'))
const Database = require('better-sqlite3')
const db = new Database(dbFile, { readonly: true })
const tables = db
  .prepare("select name from sqlite_master where type = 'table' and name not like '\\_%' escape '\\' order by name")
  .all()
  .map((r) => r.name)
console.log(`\nDatastore: ${datastore}/demo/{demo_sftp,demo_db}`)
console.log(`SQLite:    ${dbFile}`)
for (const t of tables) {
  const q = `select count(*) as n from "${t}" where _del is null`
  console.log(`  ${t}: ${db.prepare(q).get().n} current rows`)
}
const sales = tables.find((t) => t.endsWith('sales'))
if (sales) {
  const query = `select order_num, line_num, sku, qty, amount from "${sales}" where _del is null order by order_num, line_num limit 5`
  console.log(`\nLook at the data:\n  sqlite3 ${path.relative(process.cwd(), dbFile)} '${query}'`)
  console.table(db.prepare(query).all())
}
console.log('Run `npm run demo` again: nothing is loaded twice.')
