import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { snappyUncompress } from 'hyparquet'
import { snappyCompress } from '../src/compression.js'

/** Decodes with hyparquet's snappy decoder (the reader side of the maintained library), not a copy of ours. */
function uncompress(src: Uint8Array): Uint8Array {
  let len = 0
  for (let p = 0, shift = 0; ; shift += 7) {
    const b = src[p++]!
    len += (b & 0x7f) * 2 ** shift
    if (b < 0x80) break
  }
  const out = new Uint8Array(len)
  snappyUncompress(src, out)
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

  it('round-trips 300 seeded random inputs built of literals and back-references of every length and distance', () => {
    let seed = 20261206
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31
      return seed % n
    }
    for (let i = 0; i < 300; i++) {
      const out: number[] = []
      const size = rand(4) === 0 ? rand(200_000) : rand(3_000)
      while (out.length < size) {
        if (out.length === 0 || rand(2) === 0) for (let k = rand(80) + 1; k > 0; k--) out.push(rand(256))
        else {
          const distance = rand(Math.min(out.length, 70_000)) + 1
          for (let k = rand(300) + 1; k > 0; k--) out.push(out[out.length - distance]!)
        }
      }
      const input = new Uint8Array(out)
      expect(Buffer.from(uncompress(snappyCompress(input))).equals(Buffer.from(input)), `input ${i}`).toBe(true)
    }
  })
})
