import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { snappyCompress } from '../src/compression.js'

/** A plain decoder of the raw snappy format, written from the format description, to check the encoder against. */
function uncompress(src: Uint8Array): Uint8Array {
  let p = 0
  let len = 0
  for (let shift = 0; ; shift += 7) {
    const b = src[p++]!
    len |= (b & 0x7f) << shift
    if (b < 0x80) break
  }
  const out = new Uint8Array(len)
  let o = 0
  while (p < src.length) {
    const tag = src[p++]!
    if ((tag & 3) === 0) {
      let n = tag >>> 2
      if (n >= 60) {
        const bytes = n - 59
        n = 0
        for (let k = 0; k < bytes; k++) n |= src[p++]! << (8 * k)
      }
      n += 1
      out.set(src.subarray(p, p + n), o)
      p += n
      o += n
      continue
    }
    let n: number
    let offset: number
    if ((tag & 3) === 1) {
      n = ((tag >>> 2) & 7) + 4
      offset = ((tag >>> 5) << 8) | src[p++]!
    } else if ((tag & 3) === 2) {
      n = (tag >>> 2) + 1
      offset = src[p]! | (src[p + 1]! << 8)
      p += 2
    } else throw new Error('4-byte offsets are not written by the encoder')
    if (offset <= 0 || offset > o) throw new Error(`copy offset ${offset} at output byte ${o}`)
    for (let k = 0; k < n; k++, o++) out[o] = out[o - offset]!
  }
  if (o !== len) throw new Error(`${o} bytes decoded, the header says ${len}`)
  return out
}

describe('snappy', () => {
  it('round-trips empty, tiny, random, repetitive and page-sized inputs, and compresses what repeats', () => {
    const text = new TextEncoder().encode(Array.from({ length: 60_000 }, (_, i) => `note ${i} c${i % 13};`).join(''))
    const runs = new Uint8Array(300_000).fill(7)
    const mixed = new Uint8Array(1 << 20)
    for (let i = 0; i < mixed.length; i++) mixed[i] = i % 1000 < 500 ? (i * 7) & 0xff : (i >>> 3) & 3
    const inputs = [
      new Uint8Array(0),
      new Uint8Array([1]),
      randomBytes(14),
      randomBytes(15),
      randomBytes(16),
      randomBytes(70_000),
      text,
      runs,
      mixed,
      new Uint8Array(Buffer.concat([randomBytes(65_530), runs.subarray(0, 100), randomBytes(100)])),
    ]
    for (const input of inputs) {
      const packed = snappyCompress(input)
      expect(Buffer.from(uncompress(packed)).equals(Buffer.from(input)), `${input.length} bytes`).toBe(true)
    }
    expect(snappyCompress(text).length).toBeLessThan(text.length / 3)
    expect(snappyCompress(runs).length).toBeLessThan(20_000)
  })
})
