import { spawn, type ChildProcess } from 'node:child_process'
import { BIN } from './helpers.js'

/** A running `anchovy start` child process. */
export interface Spawned {
  readonly proc: ChildProcess
  readonly done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>
}

/** Starts `anchovy <args>` the way a user does, with only PATH/HOME from this process plus `env`. */
export function spawnAnchovy(args: string[], cwd: string, env: Record<string, string>): Spawned {
  const proc = spawn(process.execPath, [BIN, ...args], {
    cwd,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  proc.stdout!.on('data', (d: Buffer) => (stdout += d.toString()))
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>(
    (resolve) => {
      proc.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }))
    },
  )
  return { proc, done }
}

/** Runs `anchovy <args>` to the end. */
export function anchovy(args: string[], cwd: string, env: Record<string, string>): Spawned['done'] {
  return spawnAnchovy(args, cwd, env).done
}
