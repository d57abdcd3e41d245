// What the sftp benchmarks share: the generated CSV, a free loopback port, waiting for sshd's banner.
import { createWriteStream } from 'node:fs'
import * as net from 'node:net'

/** The CSV's columns, in file order. */
export const COLUMNS = ['id', 'customer', 'amount', 'created_at', 'day', 'country', 'note']

/** Writes `rows` generated orders as CSV to `file`. */
export async function generate(file, rows) {
  const out = createWriteStream(file)
  const countries = ['FR', 'DE', 'US', 'GB', 'ES', 'IT', 'NL', 'BE']
  let chunk = `${COLUMNS.join(',')}\n`
  for (let i = 0; i < rows; i++) {
    const d = new Date(Date.UTC(2025, 0, 1) + i * 1000).toISOString()
    chunk += `${i},customer-${(i * 7919) % 100000},${((i % 100000) / 100).toFixed(2)},${d.slice(0, 19).replace('T', ' ')},${d.slice(0, 10)},${countries[i % 8]},"note for order ${i}, ok"\n`
    if (chunk.length > 1 << 20) {
      if (!out.write(chunk)) await new Promise((r) => out.once('drain', r))
      chunk = ''
    }
  }
  out.end(chunk)
  await new Promise((r) => out.on('finish', r))
}

export function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })
}

export async function waitForPort(port) {
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1')
      s.on('data', () => (s.destroy(), resolve(true)))
      s.on('error', () => resolve(false))
    })
    if (ok) return
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error('sshd did not start')
}
