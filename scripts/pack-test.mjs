// The npm user path (npm run test:pack): pack every package as npm would publish it, install the tarballs into an
// empty project outside the monorepo, and run the demo there with `npx anchovy`. Third-party dependencies come from
// the registry (or the npm cache); nothing is taken from the monorepo's node_modules. Needs a prior `npm run build`.
import { spawnSync } from 'node:child_process'
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import * as path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const work = mkdtempSync(path.join(tmpdir(), 'anchovies-pack-'))
const tarballs = path.join(work, 'tarballs')
const project = path.join(work, 'project')
const keep = process.env.KEEP_PACK_TEST === '1'

function step(title) {
  console.log(`\n== ${title}`)
}

function run(cmd, args, options = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...options, env: { ...process.env, ...options.env } })
  if (r.status !== 0) {
    console.error(r.stdout, r.stderr)
    fail(`${cmd} ${args.join(' ')} exited ${r.status}`)
  }
  return r.stdout
}

function fail(message) {
  console.error(`pack test failed: ${message}${keep ? ` (files kept in ${work})` : ''}`)
  if (!keep) rmSync(work, { recursive: true, force: true })
  process.exit(1)
}

function expect(condition, message) {
  if (!condition) fail(message)
}

try {
  step('npm pack every workspace')
  mkdirSync(tarballs, { recursive: true })
  run('npm', ['pack', '--workspaces', '--pack-destination', tarballs, '--silent'], { cwd: repo })
  const packed = readdirSync(tarballs).filter((f) => f.endsWith('.tgz'))
  console.log(packed.join('\n'))
  expect(packed.length === 6, `expected 6 tarballs, got ${packed.length}`)

  step(`npm install the tarballs into ${project}`)
  cpSync(path.join(repo, 'examples/demo'), project, { recursive: true })
  writeFileSync(
    path.join(project, 'package.json'),
    `${JSON.stringify({ name: 'anchovies-user', private: true, type: 'module' }, null, 2)}\n`,
  )
  run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', ...packed.map((f) => path.join(tarballs, f))], {
    cwd: project,
  })
  const copies = run('npm', ['ls', '@anchovies/core', '--all', '--parseable'], { cwd: project }).trim().split('\n')
  expect(new Set(copies).size === 1, `expected one copy of @anchovies/core, got:\n${copies.join('\n')}`)

  step('every package imports by its name')
  for (const name of ['core', 'plugin-sftp', 'plugin-sql', 'plugin-azblob', 'plugin-lake', 'plugin-singer']) {
    run(process.execPath, ['--input-type=module', '-e', `await import('@anchovies/${name}')`], { cwd: project })
  }

  step('the demo with npx anchovy')
  const env = { ACHVY_DATASTORE: path.join(project, 'datastore'), ACHVY_USER: 'demo', ACHVY_LOG_LEVEL: 'warn' }
  const anchovy = (args, extra) => {
    console.log(`$ npx anchovy ${args.join(' ')}`)
    const results = JSON.parse(
      run('npx', ['--no-install', 'anchovy', ...args], { cwd: project, env: { ...env, ...extra } }),
    )
    const rows = {}
    for (const b of results.batches)
      for (const t of b.done_tasks) if (t.task_type === 'TABLE') rows[t.tbl] = [t.status, t.data.rows ?? 0]
    console.log(rows)
    return rows
  }
  const down = anchovy(['start', '-op', 'sftp.CsvDownloader', '--id', 'demo_sftp', '--config-file', 'config.yaml'], {
    ACHVY_CNXN__URI: pathToFileURL(path.join(project, 'files')).href,
  })
  expect(down.sales?.[0] === 'OK' && down.sales[1] === 2656, 'the downloader did not read 2656 sales rows')
  expect(down.contacts?.[0] === 'OK' && down.contacts[1] === 800, 'the downloader did not read 800 contacts')
  const dbFile = path.join(project, 'demo.db')
  anchovy(['start', '-op', 'sql.Uploader', '--id', 'demo_db', '-U', 'demo_sftp'], {
    ACHVY_CNXN__DB__URL: `sqlite:///${dbFile}`,
  })

  // Read the result with the better-sqlite3 that plugin-sql brought into the user's project.
  const Database = createRequire(path.join(project, 'node_modules/@anchovies/plugin-sql/package.json'))(
    'better-sqlite3',
  )
  const db = new Database(dbFile, { readonly: true })
  const tables = db
    .prepare("select name from sqlite_master where type = 'table' and name not like '\\_%' escape '\\'")
    .all()
    .map((r) => r.name)
  const current = (suffix) => {
    const table = tables.find((t) => t.endsWith(suffix))
    return table === undefined ? 0 : db.prepare(`select count(*) as n from "${table}" where _del is null`).get().n
  }
  expect(current('sales') === 2656, `expected 2656 current sales rows in SQLite, got ${current('sales')}`)
  expect(current('contacts') === 800, `expected 800 current contacts in SQLite, got ${current('contacts')}`)
  db.close()
  console.log('\npack test ok: the packed packages install and run the demo outside the monorepo')
} catch (err) {
  fail(err instanceof Error ? (err.stack ?? err.message) : String(err))
}
if (!keep) rmSync(work, { recursive: true, force: true })
