import { createRequire } from 'node:module'
import * as zlib from 'node:zlib'

/** The codecs a lake file can be written with. */
export const COMPRESSIONS = ['snappy', 'zstd'] as const
/** One codec name (the `lake_compression` setting). */
export type Compression = (typeof COMPRESSIONS)[number]

type Compress = (input: Uint8Array) => Uint8Array

const require = createRequire(import.meta.url)
let zstd: Compress | undefined

/**
 * Loads the zstd compressor: Node's own (22.15 and later) or the WebAssembly build of the reference library
 * (Node 20). Called once before the first zstd file.
 */
export async function loadZstd(): Promise<void> {
  if (zstd) return
  const native = (zlib as unknown as { zstdCompressSync?: (b: Uint8Array) => Buffer }).zstdCompressSync
  if (native) {
    zstd = (b) => native(b)
    return
  }
  const wasm = require('@bokuweb/zstd-wasm') as {
    init(): Promise<void>
    compress(b: Uint8Array, level?: number): Uint8Array
  }
  await wasm.init()
  zstd = (b) => wasm.compress(b, 3)
}

/** The compressors hyparquet-writer uses beyond its built-in snappy. */
export function compressors(): Record<string, Compress> {
  return zstd ? { ZSTD: zstd } : {}
}
