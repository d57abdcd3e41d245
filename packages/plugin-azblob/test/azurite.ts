import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer, request } from 'node:http'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { EMULATOR_ACCOUNT, EMULATOR_KEY } from '../src/location.js'

const MAIN = resolve(import.meta.dirname, '../../../node_modules/azurite/dist/src/blob/main.js')

/** A free loopback TCP port. */
export async function freePort(): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as { port: number }).port
  server.close()
  await once(server, 'close')
  return port
}

/** A real Azurite blob service on 127.0.0.1 with its own temporary folder, started and stopped by a test. */
export class Azurite {
  private proc: ChildProcess | undefined

  private constructor(
    readonly port: number,
    readonly location: string,
  ) {}

  static async start(): Promise<Azurite> {
    const az = new Azurite(await freePort(), await mkdtemp(join(tmpdir(), 'anchovies-azurite-')))
    await az.launch()
    return az
  }

  /** `http://127.0.0.1:<port>/devstoreaccount1` */
  get accountUrl(): string {
    return `http://127.0.0.1:${this.port}/${EMULATOR_ACCOUNT}`
  }

  /** The emulator's connection string. */
  get connectionString(): string {
    return `DefaultEndpointsProtocol=http;AccountName=${EMULATOR_ACCOUNT};AccountKey=${EMULATOR_KEY};BlobEndpoint=${this.accountUrl};`
  }

  /** A datastore URL in path style: `http://127.0.0.1:<port>/devstoreaccount1/<container>/<prefix>`. */
  url(container: string, prefix = ''): string {
    return `${this.accountUrl}/${container}${prefix ? `/${prefix}` : ''}`
  }

  private async launch(): Promise<void> {
    const args = [MAIN, '--blobHost', '127.0.0.1', '--blobPort', String(this.port), '--location', this.location, '--silent', '--skipApiVersionCheck', '--disableTelemetry']
    const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    this.proc = proc
    let output = ''
    proc.stdout!.on('data', (d: Buffer) => (output += d.toString()))
    proc.stderr!.on('data', (d: Buffer) => (output += d.toString()))
    const deadline = Date.now() + 20_000
    while (!(await this.answers())) {
      if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`azurite did not start on port ${this.port}: ${output}`)
      await new Promise((r) => setTimeout(r, 100))
    }
  }

  private answers(): Promise<boolean> {
    return new Promise((resolve) => {
      const req = request({ host: '127.0.0.1', port: this.port, path: `/${EMULATOR_ACCOUNT}?comp=list`, timeout: 1000 }, (res) => {
        res.resume()
        resolve(true)
      })
      req.on('error', () => resolve(false))
      req.on('timeout', () => req.destroy())
      req.end()
    })
  }

  /** Stops the service (SIGKILL: like a crash or a network cut); the data folder stays for a restart. */
  async stop(): Promise<void> {
    const proc = this.proc
    this.proc = undefined
    if (!proc || proc.exitCode !== null) return
    const exited = once(proc, 'exit')
    proc.kill('SIGKILL')
    await exited
  }

  /** Starts the service again on the same port and folder. */
  async restart(): Promise<void> {
    await this.stop()
    await this.launch()
  }

  /** Stops the service and deletes its folder. */
  async dispose(): Promise<void> {
    await this.stop()
    await rm(this.location, { recursive: true, force: true })
  }
}
