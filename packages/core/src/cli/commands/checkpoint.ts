import { Command } from 'commander'
import { AnchovyState, readCheckpoints } from '../../datastore/anchovy-state.js'
import { changeAt, checkpointHistory } from '../../datastore/checkpoint-history.js'
import { AnchoviesError } from '../../errors.js'
import { openDatastore } from '../../datastore/open.js'
import { encodeCheckpoint, type StoreContext } from '../../datastore/stores.js'
import type { ConfigSources } from '../../config/load-config.js'
import { CORE_SETTINGS } from '../../config/settings.js'
import { globMatch, isGlob } from '../../execution/glob.js'
import { prepareRun } from '../../execution/start.js'
import { createLogger } from '../../logging/logger.js'
import { validateName } from '../../names.js'
import type { JsonValue } from '../../types.js'
import { addAddressOptions, addSettingOptions } from '../options.js'
import { sourcesOf } from './common.js'

/** The settings that say where an anchovy's state is and how it is kept (the store classes a run would use). */
const STATE_SETTINGS = CORE_SETTINGS.filter((s) =>
  ['id', 'user', 'datastore', 'log_level', 'checkpoint_cls', 'tbl_store_cls', 'data_buffer_cls', 'lock_ttl'].includes(
    s.key,
  ),
)

function stateCommand(name: string): Command {
  const cmd = addAddressOptions(new Command(name))
  return addSettingOptions(
    cmd,
    STATE_SETTINGS.filter((s) => !['id', 'user', 'datastore', 'log_level'].includes(s.key)),
  )
}

/**
 * Opens the anchovy's state with the configured store classes and runs `fn`; with `lock` (the keys about to be
 * replaced), under the run lock and after recovery, exactly as a run would change it.
 */
async function withState<T>(
  src: ConfigSources,
  lock: ((key: string) => boolean) | undefined,
  fn: (state: AnchovyState) => Promise<T>,
): Promise<T> {
  const { settings, stores } = await prepareRun(src, false)
  const ds = await openDatastore(settings.datastore)
  try {
    const ctx: StoreContext = { datastore: ds, user: settings.user, anchovyId: settings.id, settings }
    const state = new AnchovyState(
      ctx,
      { checkpoint: new stores.checkpoint(ctx), table: new stores.table(ctx), dataBuffer: new stores.dataBuffer(ctx) },
      createLogger(settings.log_level as 'info'),
    )
    if (!lock) return await fn(state)
    await state.open(settings.lock_ttl * 1000, () => undefined, lock)
    try {
      return await fn(state)
    } finally {
      await state.release()
    }
  } finally {
    await ds.close()
  }
}

/**
 * Committed checkpoints, read without the lock, including a newest commit whose files a crash left unwritten;
 * keys `replaced` says are about to be set or deleted are not verified (that is how a damaged one is repaired).
 */
function committed(src: ConfigSources, replaced?: (key: string) => boolean): Promise<Map<string, JsonValue>> {
  return withState(src, undefined, async (state) =>
    readCheckpoints(state.checkpointStore, await state.log.latest(), state.home, replaced),
  )
}

/** Changes checkpoints the way a run does: under the run lock, in one commit record. */
async function commitChanges(src: ConfigSources, set: Record<string, JsonValue>, deleted: string[]): Promise<void> {
  const replaced = new Set([...Object.keys(set), ...deleted])
  await withState(
    src,
    (key) => replaced.has(key),
    async (state) => {
      const stage = state.session
      for (const [k, v] of Object.entries(set)) stage.set(k, v)
      for (const k of deleted) stage.set(k, undefined)
      await state.commit(stage, { sessionId: 'cli', batchId: null })
    },
  )
}

function parseValue(text: string): JsonValue {
  try {
    return JSON.parse(text) as JsonValue
  } catch {
    return text
  }
}

/** `anchovy checkpoint list|get|set|delete|history|restore`. */
export function checkpointCommand(): Command {
  const cmd = new Command('checkpoint').description(
    "read and change an anchovy's committed checkpoints (changes take the run lock)",
  )
  const list = stateCommand('list')
    .description('list checkpoints (optionally matching a glob) as "key<TAB>value"')
    .argument('[pattern]', 'glob over keys', '*')
    .action(async (pattern: string) => {
      const values = await committed(sourcesOf(list, STATE_SETTINGS))
      const keys = [...values.keys()].filter((k) => globMatch(pattern, k)).sort()
      for (const k of keys) process.stdout.write(`${k}\t${encodeCheckpoint(values.get(k)!)}\n`)
      if (!keys.length) process.stderr.write('no checkpoints found\n')
    })
  const get = stateCommand('get')
    .description('print one checkpoint value (exit 1 when absent)')
    .argument('<key>')
    .action(async (key: string) => {
      const v = (await committed(sourcesOf(get, STATE_SETTINGS))).get(validateName('checkpoint key', key))
      if (v === undefined) {
        process.stderr.write(`no checkpoint ${key}\n`)
        process.exitCode = 1
      } else process.stdout.write(`${encodeCheckpoint(v)}\n`)
    })
  const set = stateCommand('set')
    .description('set a checkpoint (the value is parsed as JSON when it parses, else kept as a string)')
    .argument('<key>')
    .argument('<value>')
    .action(async (key: string, value: string) => {
      await commitChanges(
        sourcesOf(set, STATE_SETTINGS),
        { [validateName('checkpoint key', key)]: parseValue(value) },
        [],
      )
    })
  const del = stateCommand('delete')
    .description('delete checkpoints by key or glob (--all: every checkpoint, forcing a full re-pull)')
    .argument('[keys...]')
    .option('--all', 'delete every checkpoint')
    .action(async (keys: string[]) => {
      const src = sourcesOf(del, STATE_SETTINGS)
      const all = del.opts<{ all?: boolean }>().all
      const values = await committed(src, (k) => all === true || keys.some((p) => globMatch(p, k)))
      const doomed = [...values.keys()].filter((k) => all || keys.some((p) => globMatch(p, k)))
      // A key named exactly is deleted even when its file is gone (how a damaged checkpoint is repaired).
      for (const k of keys) if (!isGlob(k) && !doomed.includes(k)) doomed.push(validateName('checkpoint key', k))
      if (!doomed.length) {
        process.stderr.write('no matching checkpoints\n')
        return
      }
      await commitChanges(src, {}, doomed)
      process.stdout.write(`deleted ${doomed.length} checkpoint(s)\n`)
    })
  const history = stateCommand('history')
    .description(
      'every value a checkpoint had, oldest first, from the commit records: "seq<TAB>committed_at<TAB>batch<TAB>value" (--json: a JSON array)',
    )
    .argument('<key>')
    .option('--json', 'print a JSON array of {seq, committed_at, session_id, batch_id, value | deleted}')
    .action(async (key: string) => {
      const k = validateName('checkpoint key', key)
      const [changes, base] = await withState(
        sourcesOf(history, STATE_SETTINGS),
        undefined,
        async (state) => [await checkpointHistory(state.log, k), await state.log.base()] as const,
      )
      // Commit retention (commit_retention_days) removes old records, and with them the values they set.
      if (base > 1)
        process.stderr.write(
          `commits before ${base} were removed by commit_retention_days: their values are not listed\n`,
        )
      if (history.opts<{ json?: boolean }>().json) {
        process.stdout.write(`${JSON.stringify(changes)}\n`)
        return
      }
      for (const c of changes) {
        process.stdout.write(
          `${c.seq}\t${c.committed_at}\t${c.batch_id ?? c.session_id}\t${c.deleted ? '(deleted)' : encodeCheckpoint(c.value!)}\n`,
        )
      }
      if (!changes.length) process.stderr.write(`no commit changed ${k}\n`)
    })
  const restore = stateCommand('restore')
    .description('set a checkpoint back to the value it had at commit <seq> (a new commit, under the run lock)')
    .argument('<key>')
    .requiredOption('--at <seq>', 'the commit sequence number whose value to restore (see checkpoint history)')
    .action(async (key: string) => {
      const k = validateName('checkpoint key', key)
      const at = restore.opts<{ at: string }>().at
      if (!/^[1-9]\d{0,14}$/.test(at))
        throw new AnchoviesError(
          'ANCH_ERR_USAGE',
          `--at ${JSON.stringify(at)}: give a commit sequence number (1, 2, …) from anchovy checkpoint history ${k}`,
        )
      const src = sourcesOf(restore, STATE_SETTINGS)
      const seq = Number(at)
      const changes = await withState(src, undefined, async (state) => {
        const newest = (await state.log.sequences()).at(-1) ?? 0
        if (seq > newest)
          throw new AnchoviesError('ANCH_ERR_USAGE', `--at ${seq}: ${state.home} has ${newest} commit(s)`)
        const base = await state.log.base()
        if (seq < base)
          throw new AnchoviesError(
            'ANCH_ERR_USAGE',
            `--at ${seq}: commits before ${base} were removed by commit_retention_days; the oldest value that can be restored is of commit ${base} or later`,
          )
        return checkpointHistory(state.log, k)
      })
      const change = changeAt(changes, seq)
      if (!change || change.deleted) {
        process.stderr.write(
          `${k} had no value at commit ${seq}${change ? ` (commit ${change.seq} deleted it)` : ''}; nothing changed (anchovy checkpoint delete ${k} removes it)\n`,
        )
        process.exitCode = 1
        return
      }
      await commitChanges(src, { [k]: change.value! }, [])
      process.stdout.write(`restored ${k} to its value of commit ${change.seq}: ${encodeCheckpoint(change.value!)}\n`)
    })
  return cmd.addCommand(list).addCommand(get).addCommand(set).addCommand(del).addCommand(history).addCommand(restore)
}
