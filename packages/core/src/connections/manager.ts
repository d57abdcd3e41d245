import type { Logger } from 'pino'
import { META, readMembers, type ConnectionMeta } from '../decorators/metadata.js'
import { AnchoviesError } from '../errors.js'
import { type Connection, connectionEnvPrefix, readConnectionAttributes } from './connection.js'

/** An opened connection the runtime closes at shutdown. */
export interface OpenConnection {
  readonly id: string
  close(): Promise<void>
}

type ConnectionClass = new (attrs: Record<string, unknown>) => unknown

/** Describes the env vars that configure connection `id` (for error messages). */
export function connectionVarsHint(id: string, cls?: ConnectionClass): string {
  const prefix = connectionEnvPrefix(id)
  const required = (cls as unknown as { requiredAttributes?: readonly string[] } | undefined)?.requiredAttributes ?? []
  const attrs = required.length ? required.map((a) => `${prefix}${a.toUpperCase()}`).join(', ') : `${prefix}<ATTR>`
  return `${attrs} (or ${prefix}JSONDATA='{…}')`
}

/**
 * Builds, opens and injects every `@connection` of the operator. All missing connections are reported in one
 * error naming the env vars to set. On failure, what was opened is closed again.
 */
export async function openConnections(
  operator: object,
  classes: Readonly<Record<string, ConnectionClass>>,
  env: NodeJS.ProcessEnv,
  logger: Logger,
): Promise<OpenConnection[]> {
  const metas = [...readMembers<ConnectionMeta>(META.connections, operator, false).values()]
  const problems: string[] = []
  const classProblems: string[] = []
  const built: { meta: ConnectionMeta; instance: unknown }[] = []
  for (const meta of metas) {
    const cls = (meta.cls ?? own(classes, meta.id) ?? (meta.id === '' ? own(classes, 'default') : undefined)) as
      | ConnectionClass
      | undefined
    if (!cls) {
      // Never a do-nothing base Connection: the operator's code would run against a connection that cannot connect.
      classProblems.push(
        `@connection('${meta.id}') on ${operator.constructor.name}.${meta.property}: no class provides connection '${meta.id}' (the operator's module has no definePlugin default export with connections: { ${meta.id || 'default'}: … }, e.g. a CommonJS build)`,
      )
      continue
    }
    let attrs: Record<string, unknown> | undefined
    try {
      attrs = readConnectionAttributes(env, meta.id)
    } catch (err) {
      problems.push((err as Error).message)
      continue
    }
    const name = meta.id ? `connection '${meta.id}'` : 'the default connection'
    if (!attrs) {
      if (!meta.optional) problems.push(`${name} is not configured: set ${connectionVarsHint(meta.id, cls)}`)
      continue
    }
    const required = (cls as unknown as { requiredAttributes?: readonly string[] }).requiredAttributes ?? []
    const missing = required.filter((a) => attrs![a] === undefined || attrs![a] === '')
    if (missing.length) {
      problems.push(
        `${name} is missing ${missing.map((a) => `${connectionEnvPrefix(meta.id)}${a.toUpperCase()}`).join(', ')}`,
      )
      continue
    }
    built.push({ meta, instance: new cls(attrs) })
  }
  if (classProblems.length) {
    throw new AnchoviesError(
      'ANCH_ERR_CONNECTION_CLASS',
      `${classProblems.join('; ')}; fix: pass the class, @connection('id', MyConnection), or default-export definePlugin({ name, operators, connections }) from the operator's ES module`,
    )
  }
  if (problems.length) {
    throw new AnchoviesError(
      'ANCH_ERR_CONNECTION_MISSING',
      `connections are not configured:\n  - ${problems.join('\n  - ')}`,
    )
  }
  const opened: OpenConnection[] = []
  try {
    for (const { meta, instance } of built) {
      const c = instance as Partial<Connection>
      await c.connect?.()
      opened.push({ id: meta.id, close: async () => void (await c.close?.()) })
      ;(operator as Record<string, unknown>)[meta.property] = instance
      logger.debug({ connection: meta.id || 'default' }, 'connection opened')
    }
  } catch (err) {
    for (const c of opened.reverse()) await c.close().catch(() => undefined)
    // A coded error (a missing driver, a bad URL) keeps its code: it says what to fix.
    if (err instanceof AnchoviesError) throw err
    throw new AnchoviesError('ANCH_ERR_CONNECTION', `opening connection failed: ${(err as Error).message}`, {
      cause: err,
    })
  }
  return opened
}

/** An own entry of the connections map (ids come from decorators; `constructor` must not find Object's). */
function own(classes: Readonly<Record<string, ConnectionClass>>, id: string): ConnectionClass | undefined {
  return Object.hasOwn(classes, id) ? classes[id] : undefined
}
