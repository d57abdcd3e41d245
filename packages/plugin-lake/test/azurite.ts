import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer, request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ROOT } from './helpers.js'

const MAIN = join(ROOT, 'node_modules/azurite/dist/src/blob/main.js')

async function freePort(): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as { port: number }).port
  server.close()
  await once(server, 'close')
  return port
}

/** A real Azurite blob service on 127.0.0.1 with its own folder and an extra account `lakeacct` with a secret key. */
export class Azurite {
  private proc: ChildProcess | undefined
  private constructor(
    readonly port: number,
    readonly location: string,
    readonly key: string,
  ) {}

  static async start(): Promise<Azurite> {
    const key = Buffer.from(`lake-secret-key-${process.pid}-${Date.now()}`).toString('base64')
    const az = new Azurite(await freePort(), await mkdtemp(join(tmpdir(), 'anchovies-lake-azurite-')), key)
    const args = [
      MAIN,
      '--blobHost',
      '127.0.0.1',
      '--blobPort',
      String(az.port),
      '--location',
      az.location,
      '--silent',
      '--skipApiVersionCheck',
      '--disableTelemetry',
    ]
    const proc = spawn(process.execPath, args, {
      stdio: 'ignore',
      env: { ...process.env, AZURITE_ACCOUNTS: `lakeacct:${key}` },
    })
    az.proc = proc
    const deadline = Date.now() + 20_000
    while (!(await az.answers())) {
      if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`azurite did not start on port ${az.port}`)
      await new Promise((r) => setTimeout(r, 100))
    }
    return az
  }

  /** A lake URL in path style: `http://127.0.0.1:<port>/lakeacct/<container>/<prefix>`. */
  url(container: string, prefix: string): string {
    return `http://127.0.0.1:${this.port}/lakeacct/${container}/${prefix}`
  }

  private answers(): Promise<boolean> {
    return new Promise((resolve) => {
      const req = request({ host: '127.0.0.1', port: this.port, path: '/lakeacct?comp=list', timeout: 1000 }, (res) => {
        res.resume()
        resolve(true)
      })
      req.on('error', () => resolve(false))
      req.on('timeout', () => req.destroy())
      req.end()
    })
  }

  async dispose(): Promise<void> {
    const proc = this.proc
    if (proc && proc.exitCode === null) {
      const exited = once(proc, 'exit')
      proc.kill('SIGTERM')
      await exited
    }
    await rm(this.location, { recursive: true, force: true })
  }
}
