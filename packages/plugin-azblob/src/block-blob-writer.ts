import { randomBytes } from 'node:crypto'
import { Writable } from 'node:stream'
import type { BlobDatastore } from './blob-datastore.js'

/**
 * A stream that uploads a blob as staged blocks and commits the block list when it finishes, so the blob appears
 * (or is replaced) at once; destroying the stream never commits, and Azure discards the uncommitted blocks.
 * At most `blockSize × (blockConcurrency + 1)` bytes are held in memory; a blob smaller than one block is one Put Blob.
 */
export class BlockBlobWriter extends Writable {
  private chunks: Buffer[] = []
  private buffered = 0
  private readonly blockIds: string[] = []
  private readonly inflight = new Set<Promise<void>>()
  private failure: Error | undefined
  private committed = false
  private readonly aborter = new AbortController()
  private readonly tag = randomBytes(6).toString('hex')
  private readonly name: string

  constructor(
    private readonly ds: BlobDatastore,
    private readonly path: string,
  ) {
    super({ highWaterMark: 1024 * 1024 })
    this.name = ds.blobName(path)
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.chunks.push(chunk)
    this.buffered += chunk.length
    if (this.buffered < this.ds.blockSize) return callback()
    this.stageBuffered().then(() => callback(), callback)
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.finish().then(() => {
      this.committed = true
      callback()
    }, callback)
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.committed) this.aborter.abort(error ?? new Error('the write stream was destroyed'))
    this.chunks = []
    callback(error)
  }

  private async finish(): Promise<void> {
    if (this.blockIds.length === 0) {
      await this.ds.putBlob(this.path, Buffer.concat(this.chunks, this.buffered))
      return
    }
    if (this.buffered > 0) await this.stageBuffered()
    await Promise.all(this.inflight)
    if (this.failure) throw this.failure
    const client = this.ds.blob(this.path)
    await this.ds.replaceConditionally(
      this.path,
      this.name,
      (conditions, metadata, abortSignal) =>
        client.commitBlockList(this.blockIds, {
          conditions,
          metadata,
          abortSignal,
          blobHTTPHeaders: contentHeaders(this.path),
        }),
      { signal: this.aborter.signal },
    )
  }

  /** Stages the buffered bytes as the next block; waits while `blockConcurrency` blocks are in flight. */
  private async stageBuffered(): Promise<void> {
    const data = Buffer.concat(this.chunks, this.buffered)
    this.chunks = []
    this.buffered = 0
    // Block ids are unique to this stream, so two writers of one blob never commit each other's blocks.
    const id = Buffer.from(`${this.tag}-${String(this.blockIds.length).padStart(6, '0')}`).toString('base64')
    this.blockIds.push(id)
    const client = this.ds.blob(this.path)
    const staged = this.ds
      .call(`writing ${this.path}`, (abortSignal) => client.stageBlock(id, data, data.length, { abortSignal }), {
        signal: this.aborter.signal,
        timeoutFactor: 4,
      })
      .then(
        () => undefined,
        (err: unknown) => {
          this.failure ??= err as Error
        },
      )
    this.inflight.add(staged)
    void staged.finally(() => this.inflight.delete(staged))
    while (this.inflight.size >= this.ds.blockConcurrency) await Promise.race(this.inflight)
    if (this.failure) throw this.failure
  }
}

/**
 * The Content-Type of a datastore object by its name, so Storage Explorer and the portal preview JSON and download
 * data files as gzip (no Content-Encoding: clients must not decompress data files on the fly).
 */
export function contentHeaders(path: string): { blobContentType: string } {
  if (path.endsWith('.gz')) return { blobContentType: 'application/gzip' }
  if (path.endsWith('.json')) return { blobContentType: 'application/json' }
  return { blobContentType: 'text/plain; charset=utf-8' }
}
