import type { JsonValue } from '../types.js'
import type { CommitLog } from './commit-log.js'

/** One change of a checkpoint, as a commit record made it. */
export interface CheckpointChange {
  /** The commit that made the change. */
  readonly seq: number
  readonly committed_at: string
  readonly session_id: string
  readonly batch_id: string | null
  /** The value the commit set; absent when the commit deleted the key. */
  readonly value?: JsonValue
  /** True when the commit deleted the key. */
  readonly deleted?: true
}

/**
 * Every value `key` ever had, oldest first, from the commit records (each lists the checkpoints it set and deleted;
 * none is ever rewritten). Reads every record after `afterSeq` once; records are verified as they are read.
 */
export async function checkpointHistory(log: CommitLog, key: string, afterSeq = 0): Promise<CheckpointChange[]> {
  const out: CheckpointChange[] = []
  for (const seq of await log.sequences(afterSeq)) {
    const rec = await log.read(seq)
    const at = { seq, committed_at: rec.committed_at, session_id: rec.session_id, batch_id: rec.batch_id }
    if (Object.hasOwn(rec.checkpoints, key)) out.push({ ...at, value: rec.checkpoints[key]! })
    else if (rec.deleted_checkpoints.includes(key)) out.push({ ...at, deleted: true })
  }
  return out
}

/** The change in effect at commit `seq` (the newest one at or before it), or undefined when the key had none yet. */
export function changeAt(history: readonly CheckpointChange[], seq: number): CheckpointChange | undefined {
  let found: CheckpointChange | undefined
  for (const c of history) if (c.seq <= seq) found = c
  return found
}
