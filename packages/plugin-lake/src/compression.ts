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

/** The compressors hyparquet-writer uses: our snappy instead of its built-in one, and zstd once loaded. */
export function compressors(): Record<string, Compress> {
  return zstd ? { SNAPPY: snappyCompress, ZSTD: zstd } : { SNAPPY: snappyCompress }
}

/**
 * Snappy (raw block format, as Parquet's SNAPPY codec stores pages), compressed in 64 KiB fragments like the
 * reference implementation. Hand-rolled because hyparquet-writer's own snappy writes every byte through a DataView
 * and allocates a view per literal: measured on the 1,000,000-row benchmark, encoding with this one took about half
 * the time of the library's (the files are within a few per cent of the same size).
 */
export function snappyCompress(input: Uint8Array): Uint8Array {
  const n = input.length
  const out = new Uint8Array(32 + n + Math.floor(n / 6))
  let op = 0
  for (let v = n; ; v >>>= 7) {
    if (v < 0x80) {
      out[op++] = v
      break
    }
    out[op++] = (v & 0x7f) | 0x80
  }
  for (let start = 0; start < n; start += BLOCK)
    op = compressFragment(input, start, Math.min(start + BLOCK, n), out, op)
  return out.subarray(0, op)
}

const BLOCK = 1 << 16
const MAX_TABLE_BITS = 14
const TABLE = new Uint16Array(1 << MAX_TABLE_BITS)
/** Bytes at the end of a fragment that are never searched, so 4-byte loads stay inside it. */
const INPUT_MARGIN = 15

function load32(a: Uint8Array, p: number): number {
  return a[p]! | (a[p + 1]! << 8) | (a[p + 2]! << 16) | (a[p + 3]! << 24)
}

function compressFragment(input: Uint8Array, base: number, end: number, out: Uint8Array, op: number): number {
  let bits = 8
  while (bits < MAX_TABLE_BITS && 1 << bits < end - base) bits++
  const shift = 32 - bits
  TABLE.fill(0, 0, 1 << bits)
  let ip = base
  let nextEmit = base
  if (end - base >= INPUT_MARGIN) {
    const ipLimit = end - INPUT_MARGIN
    ip++
    let nextHash = Math.imul(load32(input, ip), 0x1e35a7bd) >>> shift
    outer: for (;;) {
      let skip = 32
      let nextIp = ip
      let candidate: number
      do {
        ip = nextIp
        const hash = nextHash
        nextIp = ip + (skip++ >>> 5)
        if (nextIp > ipLimit) break outer
        nextHash = Math.imul(load32(input, nextIp), 0x1e35a7bd) >>> shift
        candidate = base + TABLE[hash]!
        TABLE[hash] = ip - base
      } while (load32(input, ip) !== load32(input, candidate))
      op = emitLiteral(input, nextEmit, ip, out, op)
      do {
        const from = ip
        let matched = 4
        while (ip + matched < end && input[candidate + matched] === input[ip + matched]) matched++
        ip += matched
        op = emitCopy(out, op, from - candidate, matched)
        nextEmit = ip
        if (ip >= ipLimit) break outer
        TABLE[Math.imul(load32(input, ip - 1), 0x1e35a7bd) >>> shift] = ip - 1 - base
        const hash = Math.imul(load32(input, ip), 0x1e35a7bd) >>> shift
        candidate = base + TABLE[hash]!
        TABLE[hash] = ip - base
      } while (load32(input, ip) === load32(input, candidate))
      nextHash = Math.imul(load32(input, ++ip), 0x1e35a7bd) >>> shift
    }
  }
  return nextEmit < end ? emitLiteral(input, nextEmit, end, out, op) : op
}

function emitLiteral(input: Uint8Array, from: number, to: number, out: Uint8Array, op: number): number {
  const n = to - from - 1
  if (n < 60) out[op++] = n << 2
  else if (n < 0x100) {
    out[op++] = 60 << 2
    out[op++] = n
  } else {
    // A fragment is at most 64 KiB, so a literal's length fits two bytes.
    out[op++] = 61 << 2
    out[op++] = n & 0xff
    out[op++] = n >>> 8
  }
  if (n < 16) for (let i = from; i < to; i++) out[op++] = input[i]!
  else {
    out.set(input.subarray(from, to), op)
    op += n + 1
  }
  return op
}

function emitCopy(out: Uint8Array, op: number, offset: number, len: number): number {
  while (len >= 68) {
    op = emitCopyUpTo64(out, op, offset, 64)
    len -= 64
  }
  if (len > 64) {
    op = emitCopyUpTo64(out, op, offset, 60)
    len -= 60
  }
  return emitCopyUpTo64(out, op, offset, len)
}

function emitCopyUpTo64(out: Uint8Array, op: number, offset: number, len: number): number {
  if (len < 12 && offset < 2048) {
    out[op++] = 1 | ((len - 4) << 2) | ((offset >>> 8) << 5)
    out[op++] = offset & 0xff
  } else {
    out[op++] = 2 | ((len - 1) << 2)
    out[op++] = offset & 0xff
    out[op++] = offset >>> 8
  }
  return op
}
