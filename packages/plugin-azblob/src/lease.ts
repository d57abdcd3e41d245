import { randomBytes, randomUUID } from 'node:crypto'
import { hostname } from 'node:os'
import {
  AnchoviesError,
  AnchovyLocked,
  lockOwner,
  type DatastoreLock,
  type LockInfo,
  type LockOwner,
} from '@anchovies/core'
import type { BlobDatastore } from './blob-datastore.js'
import { downloadWhole } from './download-whole.js'
import { failureOf, type CallOptions } from './retry.js'

/** Azure lease durations are 15–60 s (or infinite, which a dead holder would keep forever). */
export const MIN_LEASE_SECONDS = 15
export const MAX_LEASE_SECONDS = 60

/**
 * The lease duration for a lock TTL: the TTL clamped to 15–60 s. A holder that stops renewing (killed, hung, cut off)
 * loses the lock when the lease expires, measured by the storage service's clock, so hosts need no synchronised clocks.
 */
export function leaseSeconds(ttlMs: number): number {
  return Math.min(MAX_LEASE_SECONDS, Math.max(MIN_LEASE_SECONDS, Math.ceil(ttlMs / 1000)))
}

/**
 * Takes the run lock at `path` as a lease on a small blob holding the holder's host, pid and heartbeat.
 * Exactly one of several concurrent callers gets the lease; the others get AnchovyLocked naming the holder.
 * An expired lease (its holder stopped renewing) is simply acquired: that is the takeover.
 */
export async function acquireLeaseLock(
  ds: BlobDatastore,
  path: string,
  ttlMs: number,
  owner?: LockOwner,
): Promise<DatastoreLock> {
  const seconds = leaseSeconds(ttlMs)
  const client = ds.blob(path)
  const lease = client.getBlobLeaseClient(randomUUID())
  const now = new Date().toISOString()
  const info: LockInfo = {
    host: hostname(),
    pid: process.pid,
    since: now,
    heartbeat: now,
    token: randomBytes(12).toString('hex'),
    ...lockOwner(owner),
  }
  const where = path.replace(/\/?\$lock$/, '')
  const quick = leaseCallOptions(ds, seconds)
  for (let attempt = 0; attempt < 5; attempt++) {
    const outcome = await ds.call(
      `locking ${where}`,
      async (abortSignal) => {
        try {
          // acquiring again with the same proposed id succeeds, so a retried try that had landed is harmless
          await lease.acquireLease(seconds, { abortSignal })
          return 'acquired' as const
        } catch (err) {
          const { status } = failureOf(err)
          if (status === 404) return 'missing' as const
          if (status === 409) return 'held' as const
          throw err
        }
      },
      quick,
    )
    if (outcome === 'missing') {
      await ds.createExclusive(path, '')
      continue
    }
    if (outcome === 'held') {
      const holder = await readHolder(ds, path)
      if (!holder) continue // released in between
      const deadLease = (holder as LockInfo & { lease?: unknown }).lease
      if (diedOnThisHost(holder) && typeof deadLease === 'string') {
        // The holder ran here and its process is gone (SIGKILL): release its lease with its own lease id instead of
        // waiting it out. That succeeds only while that very lease is the current one, so a fresh lease another
        // run took meanwhile (whose info is not written yet) is never broken.
        const freed = await ds
          .call(
            `releasing the dead holder's lock ${where}`,
            (abortSignal) => client.getBlobLeaseClient(deadLease).releaseLease({ abortSignal }),
            quick,
          )
          .then(
            () => true,
            () => false,
          )
        if (freed) continue
      }
      throw new AnchovyLocked(holder, where)
    }
    try {
      await writeInfo(ds, path, lease.leaseId, info, quick)
    } catch (err) {
      await lease.releaseLease().catch(() => undefined)
      throw err
    }
    return heldLock(ds, path, lease, info, ttlMs, seconds)
  }
  throw new AnchoviesError('ANCH_ERR_LOCKED', `could not take the run lock of ${where}: it kept changing hands`)
}

/** True when the lock holder ran on this host and its process no longer exists (hostnames are unique per machine or container). */
function diedOnThisHost(holder: LockInfo): boolean {
  if (holder.host !== hostname() || !(holder.pid > 0) || holder.pid === process.pid) return false
  try {
    process.kill(holder.pid, 0)
    return false
  } catch (err) {
    return (err as { code?: string }).code === 'ESRCH'
  }
}

/** The holder of the lock at `path`, or undefined when nobody holds a live lease. */
export async function readLeaseLock(ds: BlobDatastore, path: string): Promise<LockInfo | undefined> {
  const client = ds.blob(path)
  return ds.call(`reading the lock ${path}`, async (abortSignal) => {
    const got = await downloadWhole(client, abortSignal)
    if (got?.leaseState !== 'leased') return undefined
    const text = got.body.toString('utf8')
    try {
      const parsed = JSON.parse(text) as LockInfo
      if (typeof parsed.host === 'string' && typeof parsed.pid === 'number') return parsed
    } catch {
      // the winner has not written its details yet
    }
    const since = (got.lastModified ?? new Date()).toISOString()
    return { host: 'unknown (starting)', pid: 0, since, heartbeat: since, token: '' }
  })
}

/** The live holder, waiting up to a second for a fresh winner to write its details. */
async function readHolder(ds: BlobDatastore, path: string): Promise<LockInfo | undefined> {
  let info: LockInfo | undefined
  for (let i = 0; i < 10; i++) {
    info = await readLeaseLock(ds, path)
    if (info?.pid !== 0) return info
    await new Promise((r) => setTimeout(r, 100))
  }
  return info
}

async function writeInfo(
  ds: BlobDatastore,
  path: string,
  leaseId: string,
  info: LockInfo,
  options: CallOptions,
): Promise<void> {
  // The lease id is stored too: a run on the same host may release the lease of a holder whose process died.
  const body = Buffer.from(JSON.stringify({ ...info, lease: leaseId }))
  const client = ds.blob(path)
  await ds.call(
    `writing the lock ${path}`,
    (abortSignal) => client.upload(body, body.length, { conditions: { leaseId }, abortSignal }),
    options,
  )
}

/** A lease request that hangs is abandoned and retried after a third of the lease, so one stuck try cannot outlast it. */
function leaseCallOptions(ds: BlobDatastore, seconds: number): CallOptions {
  return { tryTimeoutMs: Math.min(ds.retry.tryTimeoutMs, (seconds * 1000) / 3) }
}

type LeaseClient = ReturnType<ReturnType<BlobDatastore['blob']>['getBlobLeaseClient']>

function heldLock(
  ds: BlobDatastore,
  path: string,
  lease: LeaseClient,
  info: LockInfo,
  ttlMs: number,
  seconds: number,
): DatastoreLock {
  const quick = leaseCallOptions(ds, seconds)
  let current = info
  let released = false
  const lost = async (): Promise<AnchoviesError> => {
    const now = await readLeaseLock(ds, path).catch(() => undefined)
    return new AnchoviesError(
      'ANCH_ERR_LOCKED',
      `the run lock ${path} was taken over by ${now ? `${now.host} pid ${now.pid}` : 'nobody (it expired or was deleted)'}`,
    )
  }
  const renewLease = (): Promise<'ok' | 'lost'> =>
    ds.call(
      `renewing the lock ${path}`,
      async (abortSignal) => {
        try {
          await lease.renewLease({ abortSignal })
          return 'ok' as const
        } catch (err) {
          const { status } = failureOf(err)
          if (status === 404 || status === 409 || status === 412) return 'lost' as const
          throw err
        }
      },
      quick,
    )
  // The runtime renews every TTL/3; a TTL beyond the longest lease needs renewals in between.
  const keepAlive =
    ttlMs > seconds * 1000
      ? setInterval(() => void renewLease().catch(() => undefined), (seconds * 1000) / 3)
      : undefined
  keepAlive?.unref()
  return {
    get info() {
      return current
    },
    renew: async () => {
      if (released) throw new AnchoviesError('ANCH_ERR_LOCKED', `the run lock ${path} was released`)
      if ((await renewLease()) === 'lost') throw await lost()
      const next = { ...info, heartbeat: new Date().toISOString() }
      await writeInfo(ds, path, lease.leaseId, next, quick)
      current = next
    },
    release: async () => {
      released = true
      clearInterval(keepAlive)
      const client = ds.blob(path)
      await ds.call(`releasing the lock ${path}`, async (abortSignal) => {
        try {
          // deleting with the lease id ends the lease too; without the lease (lost) it fails and we leave it be
          await client.delete({ conditions: { leaseId: lease.leaseId }, abortSignal })
        } catch (err) {
          const { status } = failureOf(err)
          if (status === 404 || status === 409 || status === 412) return
          throw err
        }
      })
    },
  }
}
