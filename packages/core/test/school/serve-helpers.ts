import { spawnCli, waitFor } from '../helpers.js'

/** A running `anchovy school serve` process and its base URL. */
export interface Served {
  readonly url: string
  readonly child: ReturnType<typeof spawnCli>
  stop(): Promise<void>
}

/** Starts `anchovy school serve --port 0` as a real process and waits for its address. */
export async function serve(env: Record<string, string>, args: string[] = []): Promise<Served> {
  const child = spawnCli(['school', 'serve', '--port', '0', '--all-users', ...args], { env })
  let err = ''
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()))
  await waitFor(() => /on (http:\/\/\S+)/.test(err) || child.exitCode !== null, 30_000, 'the server to listen')
  const url = /on (http:\/\/\S+)/.exec(err)?.[1]
  if (!url) throw new Error(`school serve did not start: ${err}`)
  return {
    url,
    child,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM')
      await child.result
    },
  }
}

/** GET a path (sent as is, never normalised) and return status and body. */
export async function get(
  base: string,
  path: string,
  token?: string,
): Promise<{ status: number; body: string; type: string }> {
  const { request } = await import('node:http')
  const u = new URL(base)
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: u.hostname,
        port: u.port,
        path,
        method: 'GET',
        headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
      },
      (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (d: string) => (body += d))
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body, type: String(res.headers['content-type'] ?? '') }),
        )
      },
    )
    req.on('error', reject)
    req.end()
  })
}
