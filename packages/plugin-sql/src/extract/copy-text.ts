/**
 * Parses PostgreSQL `COPY … TO STDOUT` text format: one line per row, fields separated by tabs, `\N` for NULL and
 * backslash escapes in values. Bytes arrive in any slicing; `push` returns the complete rows so far.
 */
export class CopyTextParser {
  private rest = ''
  private readonly decoder = new TextDecoder('utf-8')

  /** The rows completed by `chunk`. */
  push(chunk: Uint8Array): (string | null)[][] {
    const text = this.rest + this.decoder.decode(chunk, { stream: true })
    const last = text.lastIndexOf('\n')
    if (last < 0) {
      this.rest = text
      return []
    }
    this.rest = text.slice(last + 1)
    const lines = text.slice(0, last).split('\n')
    const rows: (string | null)[][] = new Array(lines.length)
    for (let i = 0; i < lines.length; i++) rows[i] = parseLine(lines[i]!)
    return rows
  }

  /** Checks nothing is left over at the end of the stream. */
  end(): void {
    const tail = this.rest + this.decoder.decode()
    if (tail !== '') throw new Error(`COPY output ended inside a row (${tail.length} characters left)`)
  }
}

function parseLine(line: string): (string | null)[] {
  const fields: (string | null)[] = line.split('\t')
  for (let j = 0; j < fields.length; j++) {
    const f = fields[j] as string
    if (f.length === 2 && f === '\\N') fields[j] = null
    else if (f.includes('\\')) fields[j] = unescapeCopy(f)
  }
  return fields
}

const SIMPLE: Record<string, string> = { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v' }

/** Undoes COPY text escapes: `\n`, `\t`, …, `\\`, octal `\123` and hex `\x4F`. */
export function unescapeCopy(f: string): string {
  let out = ''
  let i = 0
  while (i < f.length) {
    const k = f.indexOf('\\', i)
    if (k < 0 || k === f.length - 1) {
      out += f.slice(i)
      break
    }
    out += f.slice(i, k)
    const c = f[k + 1]!
    if (Object.hasOwn(SIMPLE, c)) {
      out += SIMPLE[c]
      i = k + 2
    } else if (c >= '0' && c <= '7') {
      let j = k + 1
      while (j < f.length && j < k + 4 && f[j]! >= '0' && f[j]! <= '7') j++
      out += String.fromCharCode(parseInt(f.slice(k + 1, j), 8))
      i = j
    } else if (c === 'x' && /^[0-9a-fA-F]/.test(f[k + 2] ?? '')) {
      let j = k + 2
      while (j < f.length && j < k + 4 && /[0-9a-fA-F]/.test(f[j]!)) j++
      out += String.fromCharCode(parseInt(f.slice(k + 2, j), 16))
      i = j
    } else {
      out += c
      i = k + 2
    }
  }
  return out
}
