import { createHash, timingSafeEqual } from 'node:crypto'
import { readFileSync } from 'node:fs'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import type { Datastore } from '../datastore/datastore.js'
import { isSecretAttribute, redact, registerSecret, registerUrlSecrets } from '../logging/secrets.js'
import { Catalog, DEFAULT_STALE_AFTER_S, isName, sanitize, type AnchovyEntry } from './catalog.js'
import { buildGraph } from './graph.js'
import { renderMetrics } from './metrics.js'
import { mapLimit } from './map-limit.js'
import { PLANS_DIR } from './plan-runner.js'

/** How `school serve` is set up. */
export interface ServerOptions {
  readonly datastore: Datastore
  /** When set, every request but `/healthz` needs `Authorization: Bearer <token>`. */
  readonly token?: string | undefined
  /** Only this user's anchovies (default: every user). */
  readonly user?: string | undefined
  readonly staleAfterS?: number
  /** Values from this environment are masked in every response (the server's own secrets). */
  readonly env?: Readonly<Record<string, string | undefined>>
  readonly logger?: boolean
}

/** The page's files: a fixed map, so no request path ever reaches the filesystem. */
const WEB_FILES: ReadonlyMap<string, { file: string; type: string }> = new Map([
  ['/', { file: 'index.html', type: 'text/html; charset=utf-8' }],
  ['/index.html', { file: 'index.html', type: 'text/html; charset=utf-8' }],
  ['/app.js', { file: 'app.js', type: 'text/javascript; charset=utf-8' }],
  ['/style.css', { file: 'style.css', type: 'text/css; charset=utf-8' }],
])

/** The page ships in the package (`src/school/web/`, found from both `src/` and `dist/`). */
const WEB_DIR = new URL('../../src/school/web/', import.meta.url)

const NAME_PATTERN = '^[A-Za-z0-9_][A-Za-z0-9_\\-.]{0,127}$'
const SESSION_PATTERN = '^[0-9]{14}\\.[0-9a-f]{8}$'
const TABLE_PATTERN = '^[A-Za-z0-9_][A-Za-z0-9_\\-.]{0,255}$'

const anchovyParams = {
  type: 'object',
  required: ['user', 'id'],
  additionalProperties: false,
  properties: {
    user: { type: 'string', pattern: NAME_PATTERN, not: { pattern: '\\.\\.' } },
    id: { type: 'string', pattern: NAME_PATTERN, not: { pattern: '\\.\\.' } },
  },
} as const
const runParams = {
  ...anchovyParams,
  required: ['user', 'id', 'session'],
  properties: { ...anchovyParams.properties, session: { type: 'string', pattern: SESSION_PATTERN } },
} as const
const tableParams = {
  ...anchovyParams,
  required: ['user', 'id', 'table'],
  properties: {
    ...anchovyParams.properties,
    table: { type: 'string', pattern: TABLE_PATTERN, not: { pattern: '\\.\\.' } },
  },
} as const

/** Registers the secrets of an environment, so no response can carry them (connection values, passwords in URLs). */
export function registerEnvSecrets(env: Readonly<Record<string, string | undefined>>): void {
  for (const [k, v] of Object.entries(env)) {
    if (typeof v !== 'string') continue
    registerUrlSecrets(v)
    if (isSecretAttribute(k) || /^ACHVY_CNXN__.*(PASS|SECRET|TOKEN|KEY)/i.test(k)) registerSecret(v)
  }
}

/** True when `given` equals `expected`, in time that does not depend on where they differ. */
export function tokenMatches(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest()
  const b = createHash('sha256').update(expected).digest()
  return timingSafeEqual(a, b)
}

/** The read-only HTTP API, `/metrics` and the page over a datastore (tests call it with `inject()`). */
export async function buildServer(options: ServerOptions): Promise<FastifyInstance> {
  if (options.env) registerEnvSecrets(options.env)
  if (options.token) registerSecret(options.token)
  const catalog = new Catalog(options.datastore)
  const staleAfterS = options.staleAfterS ?? DEFAULT_STALE_AFTER_S
  const app = Fastify({ logger: options.logger ?? false, routerOptions: { maxParamLength: 300 }, bodyLimit: 1024 })
  const web = new Map<string, Buffer>()
  for (const { file } of WEB_FILES.values()) if (!web.has(file)) web.set(file, readFileSync(new URL(file, WEB_DIR)))

  app.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
    reply.header('x-content-type-options', 'nosniff')
    reply.header('referrer-policy', 'no-referrer')
    reply.header('cache-control', 'no-store')
    if (!options.token || req.url === '/healthz') return
    const auth = req.headers.authorization ?? ''
    const given = auth.startsWith('Bearer ') ? auth.slice(7).trim() : ''
    // The page itself is public: it holds no data and asks for the token to call the API.
    if (WEB_FILES.has(req.url)) return
    if (!tokenMatches(given, options.token)) {
      reply.header('www-authenticate', 'Bearer realm="anchovy school"')
      return reply.code(401).send({ error: 'unauthorized', message: 'send Authorization: Bearer <token>' })
    }
  })
  // Every response body is redacted once more on the way out: nothing registered as a secret leaves the server.
  app.addHook('onSend', async (_req, _reply, payload) => (typeof payload === 'string' ? redact(payload) : payload))
  app.setNotFoundHandler((_req, reply) => reply.code(404).send({ error: 'not found' }))
  app.setErrorHandler((err: { statusCode?: number; validation?: unknown }, _req, reply) => {
    const status = err.validation
      ? 400
      : err.statusCode && err.statusCode >= 400 && err.statusCode < 500
        ? err.statusCode
        : 500
    return reply
      .code(status)
      .send({ error: status === 400 ? 'bad request' : status === 500 ? 'internal error' : 'error' })
  })

  for (const [route, { file, type }] of WEB_FILES) {
    app.get(route, async (_req, reply) => {
      reply.header(
        'content-security-policy',
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
      )
      return reply.type(type).send(web.get(file))
    })
  }
  app.get('/healthz', async () => ({ ok: true }))

  const list = (): Promise<AnchovyEntry[]> => catalog.list({ user: options.user, staleAfterS })
  const find = async (user: string, id: string): Promise<AnchovyEntry | undefined> =>
    options.user !== undefined && user !== options.user ? undefined : catalog.get(user, id, { staleAfterS })
  type P = { user: string; id: string; session: string; table: string }
  const notFound = (reply: FastifyReply): FastifyReply => reply.code(404).send({ error: 'not found' })

  app.get('/api/anchovies', async () => ({ anchovies: await list() }))
  app.get('/api/graph', async () => buildGraph(await list()))
  app.get('/metrics', async (_req, reply) =>
    reply.type('text/plain; version=0.0.4; charset=utf-8').send(renderMetrics(await list())),
  )
  app.get('/api/anchovies/:user/:id', { schema: { params: anchovyParams } }, async (req, reply) => {
    const { user, id } = req.params as P
    return (await find(user, id)) ?? notFound(reply)
  })
  app.get(
    '/api/anchovies/:user/:id/runs',
    {
      schema: {
        params: anchovyParams,
        querystring: { type: 'object', properties: { limit: { type: 'integer', minimum: 1, maximum: 500 } } },
      },
    },
    async (req, reply) => {
      const { user, id } = req.params as P
      if (!(await find(user, id))) return notFound(reply)
      return { runs: await catalog.runs(user, id, (req.query as { limit?: number }).limit ?? 50) }
    },
  )
  app.get('/api/anchovies/:user/:id/runs/:session', { schema: { params: runParams } }, async (req, reply) => {
    const { user, id, session } = req.params as P
    if (!(await find(user, id))) return notFound(reply)
    return (await catalog.run(user, id, session)) ?? notFound(reply)
  })
  app.get('/api/anchovies/:user/:id/runs/:session/tasks', { schema: { params: runParams } }, async (req, reply) => {
    const { user, id, session } = req.params as P
    if (!(await find(user, id))) return notFound(reply)
    return { tasks: await catalog.tasks(user, id, session) }
  })
  app.get('/api/anchovies/:user/:id/tables', { schema: { params: anchovyParams } }, async (req, reply) => {
    const { user, id } = req.params as P
    if (!(await find(user, id))) return notFound(reply)
    return { tables: await catalog.tables(user, id) }
  })
  app.get(
    '/api/anchovies/:user/:id/tables/:table/rows',
    {
      schema: {
        params: tableParams,
        querystring: { type: 'object', properties: { limit: { type: 'integer', minimum: 1, maximum: 1000 } } },
      },
    },
    async (req, reply) => {
      const { user, id, table } = req.params as P
      const entry = await find(user, id)
      // Only a table the anchovy's summary names: a name from the request never picks a folder on its own.
      if (!entry?.tables.some((t) => t.name === table)) return notFound(reply)
      return { rows: await catalog.lastRows(user, id, table, (req.query as { limit?: number }).limit ?? 20) }
    },
  )
  app.get('/api/anchovies/:user/:id/checkpoints', { schema: { params: anchovyParams } }, async (req, reply) => {
    const { user, id } = req.params as P
    if (!(await find(user, id))) return notFound(reply)
    return { checkpoints: await catalog.checkpoints(user, id) }
  })
  app.get('/api/plans', async () => {
    const latest = (await options.datastore.list(PLANS_DIR)).filter((e) => {
      const parts = e.path.split('/')
      return parts.length === 3 && parts[2] === 'latest.json' && isName(parts[1]) && e.size < 4 * 1024 * 1024
    })
    const plans = await mapLimit(latest, 16, async (e) => {
      try {
        return sanitize(JSON.parse((await options.datastore.read(e.path))?.toString('utf8') ?? 'null'))
      } catch {
        return null
      }
    })
    return { plans: plans.filter((p) => p !== null) }
  })
  return app
}
