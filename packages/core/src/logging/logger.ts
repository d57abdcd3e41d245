import pino, { type Logger, type LevelWithSilent } from 'pino'
import { redact } from './secrets.js'

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' }
const PRETTY_SKIP = new Set(['level', 'time', 'msg', 'pid', 'hostname'])

/** The pino levels accepted by `--log-level`. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const

/** An error field for a terminal: `code: message`, with the stack on the following lines only when `stacks`. */
function prettyError(v: unknown, stacks: boolean): string {
  if (v === null || typeof v !== 'object') return typeof v === 'string' ? v : JSON.stringify(v)
  const e = v as { code?: unknown; type?: unknown; message?: unknown; stack?: unknown }
  const head = `${typeof e.code === 'string' ? e.code : typeof e.type === 'string' ? e.type : 'Error'}: ${String(e.message ?? '')}`
  const frames =
    stacks && typeof e.stack === 'string'
      ? e.stack
          .split('\n')
          .filter((l) => /^\s+at /.test(l))
          .map((l) => `\n    ${l.trim()}`)
          .join('')
      : ''
  return head + frames
}

/**
 * Formats one pino JSON line for a terminal: `12:00:01 INFO  message key=value`; an `err` field reads
 * `code: message` (its stack only with `stacks`, at debug level).
 */
export function prettyLine(line: string, stacks = false): string {
  try {
    const rec = JSON.parse(line) as Record<string, unknown>
    const time = new Date(Number(rec.time)).toISOString().slice(11, 19)
    const level = (LEVELS[Number(rec.level)] ?? String(rec.level)).padEnd(5)
    const extra = Object.entries(rec)
      .filter(([k]) => !PRETTY_SKIP.has(k))
      .map(([k, v]) => `${k}=${k === 'err' ? prettyError(v, stacks) : typeof v === 'string' ? v : JSON.stringify(v)}`)
      .join(' ')
    return `${time} ${level} ${String(rec.msg ?? '')}${extra ? `  ${extra}` : ''}\n`
  } catch {
    return line
  }
}

/**
 * The line with every key once. pino writes a child's bindings and the call's fields side by side, so
 * `logger.child({ table }).info({ table }, …)` (the runtime binds the qualified table name; a plugin logs its own)
 * would repeat a key, which many log stores reject or resolve differently. As `JSON.parse` does, the last value
 * (the call's, the innermost child's) wins, in the first one's place.
 */
export function uniqueKeys(line: string): string {
  try {
    return `${JSON.stringify(JSON.parse(line))}\n`
  } catch {
    return line
  }
}

/**
 * Creates the root logger: pino JSON lines to stderr (pretty when stderr is a terminal), with every registered
 * secret masked before a byte is written.
 */
export function createLogger(level: LevelWithSilent = 'info', pretty = process.stderr.isTTY === true): Logger {
  const stacks = level === 'debug' || level === 'trace'
  const destination = {
    write(line: string): void {
      const safe = redact(uniqueKeys(line))
      process.stderr.write(pretty ? prettyLine(safe, stacks) : safe)
    },
  }
  return pino(
    {
      level,
      base: { pid: process.pid },
      serializers: { err: pino.stdSerializers.err },
      formatters: { level: (_label, number) => ({ level: number }) },
    },
    destination,
  )
}
