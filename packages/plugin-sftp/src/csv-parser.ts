/** How a delimited file is split into fields. */
export interface CsvSyntax {
  /** Field separator (one or more characters). */
  readonly delimiter: string
  /** Quote character, or null for files without quoting. */
  readonly quote: string | null
  /** Escape character inside quoted fields; equal to `quote` means RFC 4180 doubling (`""`). */
  readonly escape: string | null
  /** Lines starting with this prefix are skipped (outside quoted fields), or null. */
  readonly comment: string | null
  /** Physical lines skipped at the top of the file, before the header. */
  readonly skipRows: number
  /** A record longer than this many characters is a bad row (bounds memory on an unterminated quote). */
  readonly maxRecordChars: number
  /** Accept a quote character inside an unquoted field as data (`12" pipe`) instead of a bad row. */
  readonly relaxQuotes: boolean
}

/** Receives what the parser finds; called synchronously from `feed`. */
export interface CsvHandler {
  /** A record: its fields and the physical line it starts on (1-based). */
  record(fields: string[], line: number): void
  /** A malformed record: where it starts, why, and its text (the resync skips past it). */
  issue(line: number, reason: string, raw: string): void
}

const LF = 10
const CR = 13
const NEED_MORE = 0
/** Resync after the physical line holding the error. */
const BAD_LINE = 1
/** Resync after the first physical line of the record (unterminated quote, oversized record). */
const BAD_START = 2

/**
 * A streaming parser for delimited text: quoted fields (with newlines), doubled or escaped quotes, comments,
 * CRLF or LF line ends. Unlike csv-parse, it resynchronises at the next line after a malformed record, so
 * `on_bad_row: skip` loses only the bad record, and it reports the line each record starts on.
 * Memory is bounded by the longest record (capped by `maxRecordChars`).
 */
export class CsvParser {
  private buf = ''
  private line = 1
  private toSkip: number
  private minLength = 0
  private discarding = false
  private fields: string[] = []
  private failure = ''
  private failureAt = 0
  private failureKind = 0
  private consumedLines = 0
  /** In `parse`: the next delimiter at or after the current field (buffer length when none), found once. */
  private nextDelimiter = -1
  private readonly dlen: number
  private readonly qlen: number
  private readonly elen: number
  /** One-character delimiter and quote, quotes doubled or not escaped: the common case, parsed by char codes. */
  private readonly simple: boolean
  private readonly d: number
  private readonly q: number

  /**
   * `startLine`: the physical line the text fed first starts on, when parsing resumes in the middle of a file at
   * the start of a record (`skipRows` then does not apply: those lines were skipped before).
   */
  constructor(
    private readonly syntax: CsvSyntax,
    private readonly handler: CsvHandler,
    startLine?: number,
  ) {
    this.toSkip = startLine === undefined ? syntax.skipRows : 0
    if (startLine !== undefined) this.line = startLine
    this.dlen = syntax.delimiter.length
    this.qlen = syntax.quote?.length ?? 0
    this.elen = syntax.escape?.length ?? 0
    this.simple = this.dlen === 1 && this.qlen === 1 && (syntax.escape === null || syntax.escape === syntax.quote)
    this.d = syntax.delimiter.charCodeAt(0)
    this.q = syntax.quote?.charCodeAt(0) ?? -1
  }

  /**
   * Where the next record starts, between two `feed` calls: the text fed but not consumed yet (the start of the
   * next record, from its first character) and the physical line it starts on. Undefined while lines are being
   * skipped or discarded (no record starts at a known place then).
   */
  pending(): { readonly text: string; readonly line: number } | undefined {
    if (this.discarding || this.toSkip > 0) return undefined
    return { text: this.buf, line: this.line }
  }

  /** Parses `text` (the next piece of the file); `final` marks the end of the file. */
  feed(text: string, final = false): void {
    if (this.discarding) {
      const nl = text.indexOf('\n')
      if (nl < 0) return
      text = text.slice(nl + 1)
      this.line++
      this.discarding = false
    }
    this.buf = this.buf.length ? this.buf + text : text
    // A long record is parsed again only once its text doubled (linear time), but always once it may be past
    // max_record_size: the limit holds exactly, whatever the chunk sizes.
    if (!final && this.buf.length < this.minLength && this.buf.length <= this.syntax.maxRecordChars + 1) return
    const buf = this.buf
    const pos = this.parse(buf, final)
    this.buf = pos >= buf.length ? '' : buf.slice(pos)
    this.minLength = this.buf.length > 65536 ? this.buf.length * 2 : 0
    // What is left is the start of one record: past the limit (not counting a CR that may end it), it is too long.
    const rest = this.buf.length - (this.buf.charCodeAt(this.buf.length - 1) === CR ? 1 : 0)
    if (!final && rest > this.syntax.maxRecordChars) this.oversized()
    if (final && this.buf.length) {
      // Only reachable when the parser made no progress on a truncated tail; report it rather than drop it.
      this.handler.issue(this.line, 'incomplete record at the end of the file', this.buf.slice(0, 1000))
      this.buf = ''
    }
  }

  /**
   * Reports the complete record at `pos`, longer than max_record_size, and returns where parsing goes on: after
   * its first physical line, as for a record found too long before it was complete (`oversized`), so that the
   * outcome does not depend on where the chunks of the file happen to end.
   */
  private tooLong(buf: string, pos: number): number {
    const nl = buf.indexOf('\n', pos)
    const end = nl < 0 ? buf.length : nl
    this.handler.issue(this.line, this.tooLongReason(), buf.slice(pos, Math.min(end, pos + 1000)))
    this.line++
    return end + 1
  }

  private tooLongReason(): string {
    return `record longer than max_record_size (${this.syntax.maxRecordChars} characters); an unterminated quote?`
  }

  private oversized(): void {
    const buf = this.buf
    const reason = this.tooLongReason()
    const nl = buf.indexOf('\n')
    this.handler.issue(this.line, reason, buf.slice(0, Math.min(nl < 0 ? buf.length : nl, 1000)))
    this.minLength = 0
    if (nl < 0) {
      this.buf = ''
      this.discarding = true
    } else {
      this.buf = ''
      this.line++
      this.feed(buf.slice(nl + 1))
    }
  }

  /** Parses complete records from `buf`; returns the position of the first unconsumed character. */
  private parse(buf: string, final: boolean): number {
    const n = buf.length
    const { quote, comment } = this.syntax
    const max = this.syntax.maxRecordChars
    let pos = 0
    let nextQuote = -1
    this.nextDelimiter = -1
    while (pos < n) {
      if (this.toSkip > 0) {
        const nl = buf.indexOf('\n', pos)
        if (nl < 0) {
          if (!final) break
          return n
        }
        pos = nl + 1
        this.line++
        this.toSkip--
        continue
      }
      const nl = buf.indexOf('\n', pos)
      if (nl < 0 && !final) break
      const lineEnd = nl < 0 ? n : nl
      const contentEnd = lineEnd > pos && buf.charCodeAt(lineEnd - 1) === CR ? lineEnd - 1 : lineEnd
      if (contentEnd === pos || (comment !== null && buf.startsWith(comment, pos))) {
        pos = lineEnd + 1
        this.line++
        continue
      }
      // The next quote character at or after `pos` (n when none): found once, not once per line.
      if (nextQuote < pos) {
        nextQuote = quote === null ? n : buf.indexOf(quote, pos)
        if (nextQuote < 0) nextQuote = n
      }
      if (nextQuote >= contentEnd) {
        if (contentEnd - pos > max) {
          pos = this.tooLong(buf, pos)
          continue
        }
        const fields: string[] = []
        this.plain(buf, pos, contentEnd, fields)
        this.handler.record(fields, this.line)
        pos = lineEnd + 1
        this.line++
        continue
      }
      if (this.simple) {
        const fields = this.oneLine(buf, pos, nextQuote, contentEnd)
        if (fields !== undefined) {
          if (contentEnd - pos > max) {
            pos = this.tooLong(buf, pos)
            continue
          }
          this.handler.record(fields, this.line)
          pos = lineEnd + 1
          this.line++
          continue
        }
      }
      const next = this.simple ? this.quotedSimple(buf, pos, final) : this.quoted(buf, pos, final)
      if (next === NEED_MORE) break
      if (next > 0) {
        let end = next
        if (buf.charCodeAt(end - 1) === LF) end--
        if (end > pos && buf.charCodeAt(end - 1) === CR) end--
        if (end - pos > max) {
          pos = this.tooLong(buf, pos)
          continue
        }
        this.handler.record(this.fields, this.line)
        this.line += this.consumedLines + 1
        pos = next
        continue
      }
      // A malformed record: skip past it and report it.
      let resync: number
      if (this.failureKind === BAD_LINE) {
        const end = buf.indexOf('\n', this.failureAt)
        if (end < 0 && !final) break
        resync = end < 0 ? n : end + 1
      } else {
        resync = nl < 0 ? n : nl + 1
      }
      // Longer than the limit before it went wrong: report it as too long, as a chunked read would have.
      let spanEnd = this.failureKind === BAD_LINE ? resync : Math.max(this.failureAt, lineEnd)
      if (spanEnd > pos && buf.charCodeAt(spanEnd - 1) === LF) spanEnd--
      if (spanEnd > pos && buf.charCodeAt(spanEnd - 1) === CR) spanEnd--
      if (spanEnd - pos > max) {
        pos = this.tooLong(buf, pos)
        continue
      }
      const raw = buf.slice(pos, resync).replace(/\r?\n$/, '')
      this.handler.issue(this.line, this.failure, raw)
      this.line += countLines(buf, pos, resync)
      pos = resync
    }
    return pos
  }

  /**
   * Parses one record that contains quote characters, starting at `pos`. Returns the position after its line
   * end (fields in `this.fields`, extra lines in `this.consumedLines`), NEED_MORE, or a negative number on a
   * malformed record (reason in `this.failure`).
   */
  private quoted(buf: string, pos: number, final: boolean): number {
    const n = buf.length
    const { delimiter, relaxQuotes } = this.syntax
    const quote = this.syntax.quote!
    const escape = this.syntax.escape
    const fields: string[] = []
    let i = pos
    for (;;) {
      if (buf.startsWith(quote, i)) {
        let value = ''
        i += this.qlen
        for (;;) {
          const q = buf.indexOf(quote, i)
          if (escape !== null && escape !== quote) {
            const e = buf.indexOf(escape, i)
            if (e >= 0 && (q < 0 || e < q)) {
              if (e + this.elen >= n) return final ? this.fail('unterminated quoted field', BAD_START, e) : NEED_MORE
              value += buf.slice(i, e) + buf[e + this.elen]
              i = e + this.elen + 1
              continue
            }
          }
          if (q < 0)
            return final
              ? this.fail('unterminated quoted field (no closing quote before the end of the file)', BAD_START, n)
              : NEED_MORE
          value += buf.slice(i, q)
          i = q + this.qlen
          if (escape === quote) {
            if (i + this.qlen > n && !final) return NEED_MORE
            if (buf.startsWith(quote, i)) {
              value += quote
              i += this.qlen
              continue
            }
          }
          break
        }
        fields.push(value)
        if (i >= n) {
          if (!final) return NEED_MORE
          return this.done(fields, buf, pos, n)
        }
        if (buf.startsWith(delimiter, i)) {
          i += this.dlen
          continue
        }
        const c = buf.charCodeAt(i)
        if (c === LF) return this.done(fields, buf, pos, i + 1)
        if (c === CR) {
          if (i + 1 >= n && !final) return NEED_MORE
          if (i + 1 >= n) return this.done(fields, buf, pos, n)
          if (buf.charCodeAt(i + 1) === LF) return this.done(fields, buf, pos, i + 2)
        }
        return this.fail(
          `unexpected ${JSON.stringify(buf[i])} after a closing quote (field ${fields.length})`,
          BAD_LINE,
          i,
        )
      }
      const d = buf.indexOf(delimiter, i)
      const nl = buf.indexOf('\n', i)
      if (nl < 0 && !final) return NEED_MORE
      const lineEnd = nl < 0 ? n : nl
      const end = d >= 0 && d < lineEnd ? d : lineEnd
      let value = buf.slice(i, end)
      if (end === lineEnd && value.charCodeAt(value.length - 1) === CR) value = value.slice(0, -1)
      if (!relaxQuotes && value.indexOf(quote) >= 0) {
        return this.fail(
          `quote character inside an unquoted field (field ${fields.length + 1}); set relax_quotes: true to accept it`,
          BAD_LINE,
          i,
        )
      }
      fields.push(value)
      if (end === d) {
        i = d + this.dlen
        continue
      }
      return this.done(fields, buf, pos, nl < 0 ? n : nl + 1)
    }
  }

  /**
   * The common case of a record with quotes, by native string searches: quoted fields that close on the record's
   * own line, each followed by the delimiter or the line end, and no quote inside an unquoted field. `q` is the
   * first quote at or after `pos`, `end` the line's end without its CR. Returns the fields, or undefined for
   * anything else (a field spanning lines, a bad quote, relaxed quotes), which `quotedSimple` then parses.
   */
  private oneLine(buf: string, pos: number, q: number, end: number): string[] | undefined {
    const D = this.d
    const Q = this.q
    const quote = this.syntax.quote!
    const doubling = this.syntax.escape !== null
    const fields: string[] = []
    let i = pos
    for (;;) {
      if (q >= end) {
        // No quote left on this line: the rest is plain fields.
        this.plain(buf, i, end, fields)
        return fields
      }
      if (q > i) {
        if (buf.charCodeAt(q - 1) !== D) return undefined
        this.plain(buf, i, q - 1, fields)
      }
      let start = q + 1
      let value = ''
      for (;;) {
        const c = buf.indexOf(quote, start)
        if (c < 0 || c >= end) return undefined
        if (doubling && buf.charCodeAt(c + 1) === Q) {
          value += buf.slice(start, c + 1)
          start = c + 2
          continue
        }
        value = value === '' ? buf.slice(start, c) : value + buf.slice(start, c)
        i = c + 1
        break
      }
      fields.push(value)
      if (i === end) return fields
      if (buf.charCodeAt(i) !== D) return undefined
      i++
      q = buf.indexOf(quote, i)
      if (q < 0) q = end
    }
  }

  /** Appends the fields of `buf[i, end)`, which holds no quote, split at the delimiter. */
  private plain(buf: string, i: number, end: number, fields: string[]): void {
    const delimiter = this.syntax.delimiter
    const dlen = this.dlen
    let d = this.nextDelimiter
    for (;;) {
      if (d < i) {
        d = buf.indexOf(delimiter, i)
        if (d < 0) d = buf.length
      }
      if (d + dlen > end) {
        fields.push(buf.slice(i, end))
        break
      }
      fields.push(buf.slice(i, d))
      i = d + dlen
    }
    this.nextDelimiter = d
  }

  /** `quoted` for a one-character delimiter and quote (doubled quotes or no escape), by char codes. */
  private quotedSimple(buf: string, pos: number, final: boolean): number {
    const n = buf.length
    const D = this.d
    const Q = this.q
    const quote = this.syntax.quote!
    const doubling = this.syntax.escape !== null
    const relax = this.syntax.relaxQuotes
    const fields: string[] = []
    let i = pos
    for (;;) {
      if (i < n && buf.charCodeAt(i) === Q) {
        let start = i + 1
        let value = ''
        for (;;) {
          const q = buf.indexOf(quote, start)
          if (q < 0)
            return final
              ? this.fail('unterminated quoted field (no closing quote before the end of the file)', BAD_START, n)
              : NEED_MORE
          if (q + 1 >= n && !final) return NEED_MORE
          if (doubling && q + 1 < n && buf.charCodeAt(q + 1) === Q) {
            value += buf.slice(start, q + 1)
            start = q + 2
            continue
          }
          value += buf.slice(start, q)
          i = q + 1
          break
        }
        fields.push(value)
        if (i >= n) return this.done(fields, buf, pos, n)
        const c = buf.charCodeAt(i)
        if (c === D) {
          i++
          continue
        }
        if (c === LF) return this.done(fields, buf, pos, i + 1)
        if (c === CR) {
          if (i + 1 >= n) return final ? this.done(fields, buf, pos, n) : NEED_MORE
          if (buf.charCodeAt(i + 1) === LF) return this.done(fields, buf, pos, i + 2)
        }
        return this.fail(
          `unexpected ${JSON.stringify(buf[i])} after a closing quote (field ${fields.length})`,
          BAD_LINE,
          i,
        )
      }
      let j = i
      for (; j < n; j++) {
        const c = buf.charCodeAt(j)
        if (c === D || c === LF) break
        if (c === Q && !relax) {
          return this.fail(
            `quote character inside an unquoted field (field ${fields.length + 1}); set relax_quotes: true to accept it`,
            BAD_LINE,
            j,
          )
        }
      }
      if (j >= n && !final) return NEED_MORE
      let end = j
      if (end > i && buf.charCodeAt(end - 1) === CR && (j >= n || buf.charCodeAt(j) === LF)) end--
      fields.push(buf.slice(i, end))
      if (j < n && buf.charCodeAt(j) === D) {
        i = j + 1
        continue
      }
      return this.done(fields, buf, pos, j >= n ? n : j + 1)
    }
  }

  private done(fields: string[], buf: string, start: number, next: number): number {
    this.fields = fields
    // Newlines inside quoted fields, not counting the record's own line end.
    const lines = countLines(buf, start, next)
    this.consumedLines = next > start && buf.charCodeAt(next - 1) === LF ? lines - 1 : lines
    return next
  }

  private fail(reason: string, kind: number, at: number): number {
    this.failure = reason
    this.failureKind = kind
    this.failureAt = at
    return -1
  }
}

function countLines(buf: string, from: number, to: number): number {
  let count = 0
  for (let i = buf.indexOf('\n', from); i >= 0 && i < to; i = buf.indexOf('\n', i + 1)) count++
  return count
}
