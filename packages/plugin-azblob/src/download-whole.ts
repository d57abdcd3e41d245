import { failureOf } from './retry.js'

/** A whole blob with its ETag and lease state, or undefined when it does not exist (for small objects only). */
export async function downloadWhole(
  client: {
    download(
      offset: number,
      count: undefined,
      options: { abortSignal: AbortSignal },
    ): Promise<{ readableStreamBody?: NodeJS.ReadableStream; etag?: string; leaseState?: string; lastModified?: Date }>
  },
  abortSignal: AbortSignal,
): Promise<
  { body: Buffer; etag: string | undefined; leaseState: string | undefined; lastModified: Date | undefined } | undefined
> {
  let res
  try {
    res = await client.download(0, undefined, { abortSignal })
  } catch (err) {
    if (failureOf(err).status === 404) return undefined
    throw err
  }
  const chunks: Buffer[] = []
  for await (const chunk of res.readableStreamBody as AsyncIterable<Buffer>) chunks.push(chunk)
  return { body: Buffer.concat(chunks), etag: res.etag, leaseState: res.leaseState, lastModified: res.lastModified }
}
