import { createHash, randomUUID } from 'node:crypto'
import type { Readable, Writable } from 'node:stream'
import { gunzipSync, gzipSync } from 'node:zlib'
import {
  AnchoviesError,
  type Datastore,
  type DatastoreEntry,
  type DatastoreLock,
  type LockInfo,
  type LockOwner,
  type WriteOptions,
} from '@anchovies/core'
import {
  BlobServiceClient,
  type BlockBlobClient,
  type ContainerClient,
  type ContainerListBlobFlatSegmentResponse,
} from '@azure/storage-blob'
import { BlockBlobWriter, contentHeaders } from './block-blob-writer.js'
import { resolveCredential, type CredentialKind } from './credentials.js'
import { downloadWhole } from './download-whole.js'
import { acquireLeaseLock, readLeaseLock } from './lease.js'
import { parseBlobLocation, type BlobLocation } from './location.js'
import { failureOf, retryOptionsFromEnv, withRetry, type CallOptions, type RetryOptions } from './retry.js'

/** Options of {@link BlobDatastore.open}. */
export interface BlobDatastoreOptions {
  /** Where credentials and tuning come from (default: process.env). */
  readonly env?: NodeJS.ProcessEnv
  /** Create the container when it does not exist (default: true unless `ACHVY_AZBLOB_CREATE_CONTAINER=false`). */
  readonly createContainer?: boolean
  readonly retry?: Partial<RetryOptions>
  /** Block size of streamed uploads (default 4 MiB, `ACHVY_AZBLOB_BLOCK_SIZE`). */
  readonly blockSize?: number
  /** Blocks uploaded in parallel per stream (default 4, `ACHVY_AZBLOB_BLOCK_CONCURRENCY`). */
  readonly blockConcurrency?: number
}

/** Metadata key holding a random token per write: it tells a retried write whether its earlier try already landed. */
export const WRITE_TOKEN = 'anchovieswrite'
const ETAG_CACHE_SIZE = 10_000
/** Metadata key holding a copy of a small document written with `inline` (gzip, base64): listings carry it. */
export const INLINE_KEY = 'anchoviesinline'
/**
 * The longest inline copy: Azure allows 8 KiB of metadata per blob (names and values), and the write token needs
 * about 50 bytes of it. A longer document is stored without a copy (readers then read the blob).
 */
export const MAX_INLINE_CHARS = 7 * 1024
/** The largest document an inline copy may decode to (a copy is read with its size bounded, like a file). */
const MAX_INLINE_BYTES = 1024 * 1024

/**
 * A datastore in an Azure Blob Storage container under a prefix: the same layout as on the filesystem.
 * Writes are single Put Blob requests or staged blocks committed at once (atomic); `createExclusive` is a conditional
 * create (`If-None-Match: *`); a blob this process has seen is replaced only if it is unchanged (`If-Match` on its
 * ETag), so a run that lost its lock cannot overwrite its successor's checkpoints; the run lock is a blob lease.
 */
export class BlobDatastore implements Datastore {
  readonly url: string
  private readonly etags = new Map<string, string>()
  private readonly root: string

  private constructor(
    readonly location: BlobLocation,
    readonly container: ContainerClient,
    readonly credentialKind: CredentialKind,
    readonly retry: RetryOptions,
    readonly blockSize: number,
    readonly blockConcurrency: number,
  ) {
    this.url = `${location.accountUrl}/${location.container}${location.prefix ? `/${location.prefix}` : ''}`
    this.root = location.prefix ? `${location.prefix}/` : ''
  }

  /** Parses the URL, resolves credentials, checks the container is reachable (creating it when allowed). */
  static async open(locationUrl: string, options: BlobDatastoreOptions = {}): Promise<BlobDatastore> {
    const env = options.env ?? process.env
    const loc = parseBlobLocation(locationUrl, env)
    const cred = await resolveCredential(loc, env)
    const retry = { ...retryOptionsFromEnv(env), ...options.retry }
    const client = new BlobServiceClient(
      cred.sas ? `${cred.accountUrl}?${cred.sas}` : cred.accountUrl,
      cred.credential,
      {
        retryOptions: { maxTries: 1 }, // withRetry does it (429, Retry-After, per-try timeouts)
        userAgentOptions: { userAgentPrefix: 'anchovies' },
      },
    )
    const blockSize =
      options.blockSize ?? positive(env.ACHVY_AZBLOB_BLOCK_SIZE, 4 * 1024 * 1024, 'ACHVY_AZBLOB_BLOCK_SIZE')
    const concurrency =
      options.blockConcurrency ?? positive(env.ACHVY_AZBLOB_BLOCK_CONCURRENCY, 4, 'ACHVY_AZBLOB_BLOCK_CONCURRENCY')
    const ds = new BlobDatastore(
      loc,
      client.getContainerClient(loc.container),
      cred.kind,
      retry,
      blockSize,
      concurrency,
    )
    const create = options.createContainer ?? !/^(0|false|no|off)$/i.test(env.ACHVY_AZBLOB_CREATE_CONTAINER ?? '')
    await ds.ensureContainer(create)
    return ds
  }

  /** One listing request: proves the account, the credentials and the container; creates the container if allowed. */
  private async ensureContainer(create: boolean): Promise<void> {
    const missing = await this.call(`opening ${this.url}`, async (abortSignal) => {
      try {
        await this.container.listBlobsFlat({ prefix: this.root, abortSignal }).byPage({ maxPageSize: 1 }).next()
        return false
      } catch (err) {
        if (failureOf(err).code === 'ContainerNotFound') return true
        throw err
      }
    })
    if (!missing) return
    if (!create) {
      throw new AnchoviesError(
        'ANCH_ERR_DATASTORE',
        `container ${this.location.accountUrl}/${this.location.container} does not exist: create it, or allow anchovies to (unset ACHVY_AZBLOB_CREATE_CONTAINER=false)`,
      )
    }
    await this.call(`creating container ${this.location.container}`, (abortSignal) =>
      this.container.createIfNotExists({ abortSignal }),
    )
  }

  /** The blob name of a datastore path (the prefix plus the validated path). */
  blobName(path: string): string {
    const parts: string[] = []
    for (const part of path.split('/')) {
      if (part === '') continue
      if (part === '.' || part === '..' || /[\u0000-\u001f\\]/.test(part)) {
        throw new AnchoviesError('ANCH_ERR_NAME', `refusing datastore path segment ${JSON.stringify(part)}`)
      }
      parts.push(part)
    }
    if (!parts.length) throw new AnchoviesError('ANCH_ERR_NAME', 'empty datastore path')
    return this.root + parts.join('/')
  }

  /** The client of the block blob at a datastore path. */
  blob(path: string): BlockBlobClient {
    return this.container.getBlockBlobClient(this.blobName(path))
  }

  /** Runs one request with retries; failures become AnchoviesErrors naming what was being done. */
  call<T>(doing: string, fn: (signal: AbortSignal) => Promise<T>, options?: CallOptions): Promise<T> {
    return withRetry(this.retry, this.location, doing, fn, options)
  }

  /** The ETag this process last saw for a blob (the precondition of its next replacement). */
  seenEtag(name: string): string | undefined {
    return this.etags.get(name)
  }

  /** Records the ETag of a blob this process read or wrote (bounded; the oldest entries are forgotten). */
  rememberEtag(name: string, etag: string | undefined): void {
    this.etags.delete(name)
    if (!etag) return
    this.etags.set(name, etag)
    if (this.etags.size > ETAG_CACHE_SIZE) this.etags.delete(this.etags.keys().next().value!)
  }

  async read(path: string): Promise<Buffer | undefined> {
    const name = this.blobName(path)
    const client = this.container.getBlockBlobClient(name)
    return this.call(`reading ${path}`, async (abortSignal) => {
      const got = await downloadWhole(client, abortSignal)
      if (got) this.rememberEtag(name, got.etag)
      return got?.body
    })
  }

  async readStream(path: string): Promise<Readable> {
    const name = this.blobName(path)
    const client = this.container.getBlockBlobClient(name)
    // Only the response head is bounded by the per-try timeout; the body streams for as long as it takes, and the
    // SDK resumes it (If-Match on the ETag, so it never mixes two versions) after a broken connection.
    return this.call(`reading ${path}`, async (signal) => {
      const head = new AbortController()
      const onAbort = (): void => head.abort(signal.reason)
      signal.addEventListener('abort', onAbort, { once: true })
      try {
        const res = await client.download(0, undefined, {
          abortSignal: head.signal,
          maxRetryRequests: this.retry.maxTries,
        })
        this.rememberEtag(name, res.etag)
        return res.readableStreamBody as Readable
      } catch (err) {
        if (failureOf(err).status === 404)
          throw new AnchoviesError('ANCH_ERR_DATASTORE', `reading ${path} failed: no such object in ${this.url}`)
        throw err
      } finally {
        signal.removeEventListener('abort', onAbort)
      }
    })
  }

  async write(path: string, data: string | Uint8Array, options?: WriteOptions): Promise<void> {
    const body = typeof data === 'string' ? Buffer.from(data, 'utf8') : data
    await this.putBlob(path, body, options?.inline ? inlineCopy(body) : undefined)
  }

  /**
   * Replaces a blob with one Put Blob, conditional on the ETag this process saw last (fencing a run that lost its
   * lock). `extra` metadata goes with it (every write replaces all metadata, so an older inline copy never survives).
   */
  async putBlob(path: string, body: Uint8Array, extra?: Record<string, string>): Promise<void> {
    const name = this.blobName(path)
    const client = this.container.getBlockBlobClient(name)
    await this.replaceConditionally(path, name, (conditions, metadata, abortSignal) =>
      client.upload(body, body.byteLength, {
        conditions,
        metadata: extra ? { ...extra, ...metadata } : metadata,
        abortSignal,
        blobHTTPHeaders: contentHeaders(path),
      }),
    )
  }

  /**
   * Runs a replacing request (Put Blob or Put Block List) with `If-Match` on the last seen ETag. A 412 means another
   * writer changed the blob, unless an earlier try of this very write landed (its token is in the metadata).
   */
  async replaceConditionally(
    path: string,
    name: string,
    put: (
      conditions: { ifMatch?: string },
      metadata: Record<string, string>,
      signal: AbortSignal,
    ) => Promise<{ etag?: string }>,
    options?: CallOptions,
  ): Promise<void> {
    const token = randomUUID()
    const ifMatch = this.seenEtag(name)
    await this.call(
      `writing ${path}`,
      async (signal) => {
        try {
          const res = await put(ifMatch ? { ifMatch } : {}, { [WRITE_TOKEN]: token }, signal)
          this.rememberEtag(name, res.etag)
        } catch (err) {
          if (!ifMatch || failureOf(err).status !== 412) throw err
          const props = await this.container
            .getBlockBlobClient(name)
            .getProperties({ abortSignal: signal })
            .catch(notFoundAsUndefined)
          if (props?.metadata?.[WRITE_TOKEN] === token) return this.rememberEtag(name, props.etag)
          // the stale ETag stays: every later write of this blob by this process fails too, until it reads it again
          throw new AnchoviesError(
            'ANCH_ERR_LOCKED',
            `refusing to overwrite ${path}: another writer changed it since this process last saw it (a concurrent run, or this run lost its lock); read it again or retry`,
          )
        }
      },
      options,
    )
  }

  writeStream(path: string): Writable {
    return new BlockBlobWriter(this, path)
  }

  async createExclusive(path: string, data: string | Uint8Array): Promise<boolean> {
    const body = typeof data === 'string' ? Buffer.from(data, 'utf8') : data
    const name = this.blobName(path)
    const client = this.container.getBlockBlobClient(name)
    const token = randomUUID()
    return this.call(`creating ${path}`, async (abortSignal) => {
      try {
        const res = await client.upload(body, body.byteLength, {
          conditions: { ifNoneMatch: '*' },
          metadata: { [WRITE_TOKEN]: token },
          abortSignal,
          blobHTTPHeaders: contentHeaders(path),
        })
        this.rememberEtag(name, res.etag)
        return true
      } catch (err) {
        const { status } = failureOf(err)
        if (status !== 409 && status !== 412) throw err
        // Exists: ours if an earlier try of this call landed before its answer was lost.
        const props = await client.getProperties({ abortSignal }).catch(notFoundAsUndefined)
        const mine = props?.metadata?.[WRITE_TOKEN] === token
        if (mine) this.rememberEtag(name, props?.etag)
        return mine
      }
    })
  }

  async list(prefix: string): Promise<DatastoreEntry[]> {
    const rel = prefix.split('/').filter(Boolean)
    const folder = rel.length ? `${this.blobName(rel.join('/'))}/` : this.root
    const out: DatastoreEntry[] = []
    // A flat listing of `<folder>/`: every blob below the folder, nothing beside it (`data/sales2` is not in `data/sales`).
    // Page by page, each page retried on its own, so a long listing survives a blip.
    let continuationToken: string | undefined
    do {
      const page = await this.call(`listing ${prefix || '/'}`, async (abortSignal) => {
        const pages = this.container
          .listBlobsFlat({ prefix: folder, includeMetadata: true, abortSignal })
          .byPage({ maxPageSize: 5000, ...(continuationToken ? { continuationToken } : {}) })
        return (await pages.next()).value as ContainerListBlobFlatSegmentResponse | undefined
      })
      for (const item of page?.segment.blobItems ?? []) {
        if (item.metadata?.hdi_isfolder === 'true') continue // directory markers of hierarchical-namespace accounts
        const size = item.properties.contentLength ?? 0
        const inline = fromInline(item.metadata?.[INLINE_KEY], size, item.properties.contentMD5)
        out.push({
          path: item.name.slice(this.root.length),
          size,
          mtime: item.properties.lastModified,
          ...(inline ? { inline } : {}),
        })
      }
      continuationToken = page?.continuationToken || undefined
    } while (continuationToken)
    return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
  }

  /**
   * Discards what interrupted streamed writes left under `prefix`: blobs that have only uncommitted blocks (a writer
   * killed before its block list was committed). Each is committed empty with `If-None-Match: *` (so a blob committed
   * meanwhile is left alone), which drops its blocks, then deleted. Azure would drop them after a week anyway.
   */
  async sweep(prefix: string): Promise<number> {
    const rel = prefix.split('/').filter(Boolean)
    const folder = rel.length ? `${this.blobName(rel.join('/'))}/` : this.root
    const committed = new Set((await this.list(prefix)).map((e) => this.root + e.path))
    const partial: string[] = []
    let continuationToken: string | undefined
    do {
      const page = await this.call(`sweeping ${prefix || '/'}`, async (abortSignal) => {
        const pages = this.container
          .listBlobsFlat({ prefix: folder, includeUncommitedBlobs: true, abortSignal })
          .byPage({ maxPageSize: 5000, ...(continuationToken ? { continuationToken } : {}) })
        return (await pages.next()).value as ContainerListBlobFlatSegmentResponse | undefined
      })
      for (const item of page?.segment.blobItems ?? []) if (!committed.has(item.name)) partial.push(item.name)
      continuationToken = page?.continuationToken || undefined
    } while (continuationToken)
    let removed = 0
    for (const name of partial) {
      const client = this.container.getBlockBlobClient(name)
      const token = randomUUID()
      const dropped = await this.call(`sweeping ${name.slice(this.root.length)}`, async (abortSignal) => {
        try {
          await client.commitBlockList([], {
            conditions: { ifNoneMatch: '*' },
            metadata: { [WRITE_TOKEN]: token },
            abortSignal,
          })
        } catch (err) {
          if (failureOf(err).status !== 409 && failureOf(err).status !== 412) throw err
          // committed meanwhile (a real object: keep it), unless it is our empty commit whose answer was lost
          const props = await client.getProperties({ abortSignal }).catch(notFoundAsUndefined)
          if (props?.metadata?.[WRITE_TOKEN] !== token) return false
        }
        await client.deleteIfExists({ abortSignal })
        return true
      })
      if (dropped) removed++
    }
    return removed
  }

  async delete(path: string): Promise<void> {
    const name = this.blobName(path)
    const ifMatch = this.seenEtag(name)
    await this.call(`deleting ${path}`, async (abortSignal) => {
      try {
        await this.container.getBlockBlobClient(name).delete({ conditions: ifMatch ? { ifMatch } : {}, abortSignal })
      } catch (err) {
        const { status } = failureOf(err)
        if (status === 404) return
        if (status === 412 && ifMatch) {
          throw new AnchoviesError(
            'ANCH_ERR_LOCKED',
            `refusing to delete ${path}: another writer changed it since this process last saw it (a concurrent run, or this run lost its lock); read it again or retry`,
          )
        }
        throw err
      }
    })
    this.rememberEtag(name, undefined)
  }

  lock(path: string, ttlMs: number, owner?: LockOwner): Promise<DatastoreLock> {
    return acquireLeaseLock(this, path, ttlMs, owner)
  }

  readLock(path: string): Promise<LockInfo | undefined> {
    return readLeaseLock(this, path)
  }

  async close(): Promise<void> {}
}

/** The inline copy of a small document (gzip, base64), or undefined when it would not fit the metadata. */
function inlineCopy(body: Uint8Array): Record<string, string> | undefined {
  if (body.byteLength > MAX_INLINE_BYTES) return undefined
  const copy = gzipSync(body).toString('base64')
  return copy.length <= MAX_INLINE_CHARS ? { [INLINE_KEY]: copy } : undefined
}

/**
 * The document an inline copy holds, only when it is provably the blob's content: it decodes (bounded) to exactly the
 * blob's size and MD5 (which the service computed when the blob was put). Metadata can be set apart from the content
 * (Set Blob Metadata), so a damaged or forged copy is dropped and the reader reads the blob itself.
 */
export function fromInline(value: string | undefined, size: number, md5: Uint8Array | undefined): Buffer | undefined {
  if (!value || !md5 || size > MAX_INLINE_BYTES || value.length > MAX_INLINE_CHARS) return undefined
  let doc: Buffer
  try {
    // One output chunk of exactly the expected size: the default 16 KiB chunk would keep a 16 KiB buffer alive
    // behind every 5 KiB summary of a listing (measured: 17 MB of buffers for 1,000 summaries instead of 5 MB).
    const exact = Math.max(size, 64)
    doc = gunzipSync(Buffer.from(value, 'base64'), { maxOutputLength: exact, chunkSize: exact })
  } catch {
    return undefined
  }
  if (doc.length !== size) return undefined
  const digest = createHash('md5').update(doc).digest()
  return digest.length === md5.byteLength && digest.equals(Buffer.from(md5)) ? doc : undefined
}

/** Undefined for a 404 (the blob went away); any other failure is rethrown, so the call is retried or reported. */
function notFoundAsUndefined(err: unknown): undefined {
  if (failureOf(err).status === 404) return undefined
  throw err
}

function positive(raw: string | undefined, fallback: number, name: string): number {
  if (raw === undefined || raw === '') return fallback
  const n = Number(raw)
  if (!Number.isInteger(n) || n < 1)
    throw new AnchoviesError('ANCH_ERR_CONFIG', `${name}=${JSON.stringify(raw)}: expected a positive integer`)
  return n
}
