import pino, { type Logger, type LevelWithSilent } from 'pino'
import { redact } from './secrets.js'

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' }
const PRETTY_SKIP = new Set(['level', 'time', 'msg', 'pid', 'hostname'])

/** The pino levels accepted by `--log-level`. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const

/** Formats one pino JSON line for a terminal: `12:00:01 INFO  message key=value`. */
export function prettyLine(line: string): string {
  try {
    const rec = JSON.parse(line) as Record<string, unknown>
    const time = new Date(Number(rec.time)).toISOString().slice(11, 19)
    const level = (LEVELS[Number(rec.level)] ?? String(rec.level)).padEnd(5)
    const extra = Object.entries(rec)
      .filter(([k]) => !PRETTY_SKIP.has(k))
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
      .join(' ')
    return `${time} ${level} ${String(rec.msg ?? '')}${extra ? `  ${extra}` : ''}\n`
  } catch {
    return line
  }
}

/**
 * Creates the root logger: pino JSON lines to stderr (pretty when stderr is a terminal), with every registered
 * secret masked before a byte is written.
 */
export function createLogger(level: LevelWithSilent = 'info', pretty = process.stderr.isTTY === true): Logger {
  const destination = {
    write(line: string): void {
      const safe = redact(line)
      process.stderr.write(pretty ? prettyLine(safe) : safe)
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
