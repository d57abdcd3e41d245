import { Command } from 'commander'
import { CommitLog } from '../../datastore/commit-log.js'
import type { Datastore } from '../../datastore/datastore.js'
import { openDatastore } from '../../datastore/open.js'
import { anchovyHome, CheckpointStore, encodeCheckpoint, type StoreContext } from '../../datastore/stores.js'
import type { Settings } from '../../config/load-config.js'
import { globMatch } from '../../execution/glob.js'
import { validateName } from '../../names.js'
import type { JsonValue } from '../../types.js'
import { addAddressOptions } from '../options.js'
import { addressOf } from './common.js'

async function withStore<T>(s: Settings, fn: (store: CheckpointStore, ctx: StoreContext, ds: Datastore) => Promise<T>): Promise<T> {
  const ds = await openDatastore(s.datastore)
  try {
    const ctx: StoreContext = { datastore: ds, user: s.user, anchovyId: s.id, settings: s }
    return await fn(new CheckpointStore(ctx), ctx, ds)
  } finally {
    await ds.close()
  }
}

/** Committed checkpoints, including a newest commit whose files a crash left unwritten. */
async function committed(store: CheckpointStore, ctx: StoreContext): Promise<Map<string, JsonValue>> {
  const values = await store.load()
  const latest = await new CommitLog(ctx.datastore, anchovyHome(ctx)).latest()
  if (latest) {
    for (const [k, v] of Object.entries(latest.checkpoints)) values.set(k, v)
    for (const k of latest.deleted_checkpoints) values.delete(k)
  }
  return values
}

/** Changes checkpoints the way a run does: under the run lock, in one commit record. */
async function change(s: Settings, set: Record<string, JsonValue>, deleted: string[]): Promise<void> {
  await withStore(s, async (store, ctx, ds) => {
    const home = anchovyHome(ctx)
    const lock = await ds.lock(`${home}/$lock`, 60_000)
    try {
      const log = new CommitLog(ds, home)
      const latest = await log.latest()
      if (latest) await store.apply(latest.checkpoints, latest.deleted_checkpoints)
      await log.append({
        anchovy_id: s.id,
        anchovy_user: s.user,
        session_id: 'cli',
        batch_id: null,
        committed_at: new Date().toISOString(),
        files: [],
        checkpoints: set,
        deleted_checkpoints: deleted,
        tables: [],
      })
      await store.apply(set, deleted)
    } finally {
      await lock.release()
    }
  })
}

function parseValue(text: string): JsonValue {
  try {
    return JSON.parse(text) as JsonValue
  } catch {
    return text
  }
}

/** `anchovy checkpoint list|get|set|delete`. */
export function checkpointCommand(): Command {
  const cmd = new Command('checkpoint').description("read and change an anchovy's committed checkpoints (changes take the run lock)")
  const list = addAddressOptions(new Command('list'))
    .description('list checkpoints (optionally matching a glob) as "key<TAB>value"')
    .argument('[pattern]', 'glob over keys', '*')
    .action(async (pattern: string) => {
      const s = addressOf(list)
      await withStore(s, async (store, ctx) => {
        const values = await committed(store, ctx)
        const keys = [...values.keys()].filter((k) => globMatch(pattern, k)).sort()
        for (const k of keys) process.stdout.write(`${k}\t${encodeCheckpoint(values.get(k)!)}\n`)
        if (!keys.length) process.stderr.write('no checkpoints found\n')
      })
    })
  const get = addAddressOptions(new Command('get'))
    .description('print one checkpoint value (exit 1 when absent)')
    .argument('<key>')
    .action(async (key: string) => {
      const s = addressOf(get)
      await withStore(s, async (store, ctx) => {
        const v = (await committed(store, ctx)).get(validateName('checkpoint key', key))
        if (v === undefined) {
          process.stderr.write(`no checkpoint ${key}\n`)
          process.exitCode = 1
        } else process.stdout.write(`${encodeCheckpoint(v)}\n`)
      })
    })
  const set = addAddressOptions(new Command('set'))
    .description('set a checkpoint (the value is parsed as JSON when it parses, else kept as a string)')
    .argument('<key>')
    .argument('<value>')
    .action(async (key: string, value: string) => {
      await change(addressOf(set), { [validateName('checkpoint key', key)]: parseValue(value) }, [])
    })
  const del = addAddressOptions(new Command('delete'))
    .description('delete checkpoints by key or glob (--all: every checkpoint, forcing a full re-pull)')
    .argument('[keys...]')
    .option('--all', 'delete every checkpoint')
    .action(async (keys: string[]) => {
      const s = addressOf(del)
      const all = del.opts<{ all?: boolean }>().all
      const values = await withStore(s, (store, ctx) => committed(store, ctx))
      const doomed = [...values.keys()].filter((k) => all || keys.some((p) => globMatch(p, k)))
      if (!doomed.length) {
        process.stderr.write('no matching checkpoints\n')
        return
      }
      await change(s, {}, doomed)
      process.stdout.write(`deleted ${doomed.length} checkpoint(s)\n`)
    })
  return cmd.addCommand(list).addCommand(get).addCommand(set).addCommand(del)
}
