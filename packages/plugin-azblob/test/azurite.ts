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
    private readonly accounts: string | undefined,
  ) {}

  /** Starts Azurite; `accounts` (`name:base64key;…`, Azurite's AZURITE_ACCOUNTS) adds accounts with secret keys. */
  static async start(accounts?: Record<string, string>): Promise<Azurite> {
    const list = accounts
      ? Object.entries({ [EMULATOR_ACCOUNT]: EMULATOR_KEY, ...accounts })
          .map(([n, k]) => `${n}:${k}`)
          .join(';')
      : undefined
    const az = new Azurite(await freePort(), await mkdtemp(join(tmpdir(), 'anchovies-azurite-')), list)
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

  /** The endpoint of another account: `http://127.0.0.1:<port>/<account>` */
  endpoint(account: string): string {
    return `http://127.0.0.1:${this.port}/${account}`
  }

  /** A datastore URL in path style: `http://127.0.0.1:<port>/devstoreaccount1/<container>/<prefix>`. */
  url(container: string, prefix = ''): string {
    return `${this.accountUrl}/${container}${prefix ? `/${prefix}` : ''}`
  }

  private async launch(): Promise<void> {
    const args = [
      MAIN,
      '--blobHost',
      '127.0.0.1',
      '--blobPort',
      String(this.port),
      '--location',
      this.location,
      '--silent',
      '--skipApiVersionCheck',
      '--disableTelemetry',
    ]
    const env = { ...process.env, ...(this.accounts ? { AZURITE_ACCOUNTS: this.accounts } : {}) }
    const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env })
    this.proc = proc
    let output = ''
    proc.stdout!.on('data', (d: Buffer) => (output += d.toString()))
    proc.stderr!.on('data', (d: Buffer) => (output += d.toString()))
    const deadline = Date.now() + 20_000
    while (!(await this.answers())) {
      if (proc.exitCode !== null || Date.now() > deadline)
        throw new Error(`azurite did not start on port ${this.port}: ${output}`)
      await new Promise((r) => setTimeout(r, 100))
    }
  }

  private answers(): Promise<boolean> {
    return new Promise((resolve) => {
      const req = request(
        { host: '127.0.0.1', port: this.port, path: `/${EMULATOR_ACCOUNT}?comp=list`, timeout: 1000 },
        (res) => {
          res.resume()
          resolve(true)
        },
      )
      req.on('error', () => resolve(false))
      req.on('timeout', () => req.destroy())
      req.end()
    })
  }

  /** Stops the service (SIGTERM, so it persists what it acknowledged, as Azure would); the data folder stays for a restart. */
  async stop(): Promise<void> {
    const proc = this.proc
    this.proc = undefined
    if (!proc || proc.exitCode !== null) return
    const exited = once(proc, 'exit')
    proc.kill('SIGTERM')
    const timer = setTimeout(() => proc.kill('SIGKILL'), 5000)
    await exited
    clearTimeout(timer)
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
