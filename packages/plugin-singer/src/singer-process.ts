import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { StringDecoder } from 'node:string_decoder'
import type { Logger } from '@anchovies/core'
import { redact } from '@anchovies/core'
import { SingerError } from './errors.js'

/** How a Singer process ended. */
export interface ProcessExit {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

/** Longest stderr line logged whole (the rest is cut: a log line, not a data channel). */
const MAX_LOG_LINE = 8192

/**
 * The words of a `COMMAND` attribute: a JSON array of strings (`["python", "-m", "tap_x"]`), else the text split on
 * whitespace. No shell is involved, so nothing in it is interpreted.
 */
export function commandWords(command: string, what: string): string[] {
  const text = command.trim()
  let words: unknown
  if (text.startsWith('[')) {
    try {
      words = JSON.parse(text)
    } catch {
      words = undefined
    }
    if (!Array.isArray(words) || words.length === 0 || !words.every((w) => typeof w === 'string' && w !== '')) {
      throw new SingerError(
        'ANCH_ERR_SINGER_CONFIG',
        `${what}: a COMMAND that starts with "[" must be a JSON array of strings`,
      )
    }
    return words as string[]
  }
  const split = text.split(/\s+/).filter(Boolean)
  if (!split.length) throw new SingerError('ANCH_ERR_SINGER_CONFIG', `${what}: COMMAND is empty`)
  return split
}

/**
 * A tap or target child process: stderr goes to the log line by line (secrets masked), stdout is read as lines,
 * stdin (targets) is written with back-pressure. `kill()` ends it and everything waits for its exit.
 */
export class SingerProcess {
  readonly child: ChildProcess
  readonly exited: Promise<ProcessExit>
  private spawnError: Error | undefined

  constructor(
    readonly what: string,
    words: readonly string[],
    private readonly logger: Logger,
    options: { stdin: boolean; env?: NodeJS.ProcessEnv; cwd?: string },
  ) {
    const [cmd, ...args] = words
    this.child = spawn(cmd!, args, {
      stdio: [options.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
      env: options.env ?? process.env,
      ...(options.cwd ? { cwd: options.cwd } : {}),
    })
    const errored = once(this.child, 'error').then(([err]) => {
      this.spawnError = err as Error
      return { code: null, signal: null } as ProcessExit
    })
    const closed = once(this.child, 'close').then(([code, signal]) => ({
      code: code as number | null,
      signal: signal as NodeJS.Signals | null,
    }))
    this.exited = Promise.race([closed, errored])
    this.exited.catch(() => undefined)
    this.child.stdin?.on('error', () => undefined) // a target that exits early: its exit status says why
    this.pipeStderr()
  }

  /** The error of a process that could not be started (missing or not executable command), if so. */
  startError(command: string): SingerError | undefined {
    const err = this.spawnError as NodeJS.ErrnoException | undefined
    if (!err) return undefined
    const why =
      err.code === 'ENOENT'
        ? 'was not found (is it installed and on PATH?)'
        : err.code === 'EACCES'
          ? 'is not executable'
          : `could not be started (${err.code ?? err.message})`
    return new SingerError(
      'ANCH_ERR_SINGER_PROCESS',
      `${this.what}: command ${JSON.stringify(redact(command))} ${why}`,
      { cause: err },
    )
  }

  private pipeStderr(): void {
    const decoder = new StringDecoder('utf8')
    let partial = ''
    const log = (line: string): void => {
      if (!line) return
      const text = line.length > MAX_LOG_LINE ? `${line.slice(0, MAX_LOG_LINE)}… (${line.length} characters)` : line
      this.logger.info({ process: this.what }, redact(text))
    }
    this.child.stderr!.on('data', (chunk: Buffer) => {
      const text = partial + decoder.write(chunk)
      const lines = text.split('\n')
      partial = lines.pop()!
      if (partial.length > MAX_LOG_LINE * 4) {
        log(partial)
        partial = ''
      }
      for (const l of lines) log(l.endsWith('\r') ? l.slice(0, -1) : l)
    })
    this.child.stderr!.on('end', () => log(partial + decoder.end()))
  }

  /**
   * stdout as batches of complete lines (one batch per chunk read); a line longer than `maxLineBytes` characters
   * fails, naming the limit. A last line without a newline is returned too.
   */
  async *lines(maxLineBytes: number): AsyncGenerator<string[]> {
    const decoder = new StringDecoder('utf8')
    let partial = ''
    for await (const chunk of this.child.stdout! as AsyncIterable<Buffer>) {
      const text = decoder.write(chunk)
      let start = 0
      let nl = text.indexOf('\n')
      if (nl < 0) {
        partial += text
        if (partial.length > maxLineBytes)
          throw new SingerError(
            'ANCH_ERR_SINGER_PROTOCOL',
            `${this.what}: a stdout line is longer than max_line_bytes (${maxLineBytes}); raise it if the records are genuine`,
          )
        continue
      }
      const out: string[] = []
      out.push(partial + text.slice(0, nl))
      partial = ''
      start = nl + 1
      while ((nl = text.indexOf('\n', start)) >= 0) {
        out.push(text.slice(start, nl))
        start = nl + 1
      }
      partial = text.slice(start)
      yield out
    }
    const last = partial + decoder.end()
    if (last.trim()) yield [last]
  }

  /** Ends the process: SIGTERM, then SIGKILL after `graceMs`; resolves when it exited. */
  async kill(graceMs = 2000): Promise<ProcessExit> {
    if (this.child.exitCode === null && this.child.signalCode === null && !this.spawnError) {
      this.child.kill('SIGTERM')
      const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs)
      timer.unref()
      const exit = await this.exited
      clearTimeout(timer)
      return exit
    }
    return this.exited
  }
}
