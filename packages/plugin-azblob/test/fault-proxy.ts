import { once } from 'node:events'
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http'

/** What the proxy does with one request. */
export type Fault =
  | { readonly kind: 'forward' }
  /** Answers with this status (and headers) without asking the storage. */
  | { readonly kind: 'status'; readonly status: number; readonly headers?: Record<string, string> }
  /** Forwards the request, lets the storage act on it, then cuts the connection instead of answering (a lost response). */
  | { readonly kind: 'drop-response' }

/**
 * An HTTP proxy in front of Azurite that injects faults (throttling, lost responses) into chosen requests.
 * It only forwards bytes: the SDK, the signatures and Azurite are all real.
 */
export class FaultProxy {
  readonly seen: { method: string; url: string; fault: Fault['kind']; leaseAction: string | undefined }[] = []
  private constructor(
    private readonly server: Server,
    readonly port: number,
    private readonly upstreamPort: number,
    private readonly decide: (req: IncomingMessage, index: number) => Fault,
  ) {}

  static async start(
    upstreamPort: number,
    decide: (req: IncomingMessage, index: number) => Fault,
  ): Promise<FaultProxy> {
    let proxy: FaultProxy | undefined
    const server = createServer((req, res) => proxy!.handle(req, res))
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    proxy = new FaultProxy(server, (server.address() as { port: number }).port, upstreamPort, decide)
    return proxy
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const fault = this.decide(req, this.seen.length)
    this.seen.push({
      method: req.method ?? '',
      url: req.url ?? '',
      fault: fault.kind,
      leaseAction: req.headers['x-ms-lease-action'] as string | undefined,
    })
    if (fault.kind === 'status') {
      req.resume()
      res.writeHead(fault.status, { 'content-type': 'application/xml', ...fault.headers })
      res.end(
        `<?xml version="1.0" encoding="utf-8"?><Error><Code>ServerBusy</Code><Message>injected ${fault.status}</Message></Error>`,
      )
      return
    }
    const upstream = request(
      { host: '127.0.0.1', port: this.upstreamPort, method: req.method, path: req.url, headers: req.headers },
      (up) => {
        if (fault.kind === 'drop-response') {
          up.resume()
          up.on('end', () => res.socket?.destroy())
          return
        }
        res.writeHead(up.statusCode ?? 502, up.headers)
        up.pipe(res)
      },
    )
    upstream.on('error', () => res.socket?.destroy())
    req.pipe(upstream)
  }

  async close(): Promise<void> {
    this.server.closeAllConnections()
    this.server.close()
    await once(this.server, 'close').catch(() => undefined)
  }
}
