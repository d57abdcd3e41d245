import { inspect } from 'node:util'
import { isSecretAttribute, redact, registerSecret, registerUrlSecrets } from '../logging/secrets.js'

/** Attributes of a connection, from `ACHVY_CNXN__<ID>__<ATTR>` (lower-cased names) and `…__JSONDATA`. */
export type ConnectionAttributes = Readonly<Record<string, unknown>>

/**
 * An external system (API, server, database). Subclasses override `connect`, `close` and `check`; the runtime
 * opens every connection an operator declares at startup and closes it at shutdown, even after a failure.
 * Secret attributes are masked in `toJSON` and `inspect` output.
 */
export class Connection {
  /** Attribute names that must be set; a missing one fails startup naming its env var. */
  static requiredAttributes: readonly string[] = []

  constructor(readonly attrs: ConnectionAttributes) {}

  /** Opens the connection (called at startup). */
  async connect(_signal?: AbortSignal): Promise<void> {}

  /** Closes the connection (called at shutdown). */
  async close(): Promise<void> {}

  /** Verifies the connection works, e.g. with a trivial request; throws when it does not. */
  async check(): Promise<void> {}

  /** The attributes with secrets masked. */
  toJSON(): Record<string, unknown> {
    return maskAttributes(this.attrs)
  }

  [inspect.custom](): string {
    return `${this.constructor.name} ${inspect(this.toJSON())}`
  }
}

/**
 * A copy of `attrs` with secret attributes replaced by `***`, at any depth (JSONDATA nests objects), and every other
 * string masked like a log line (registered secrets, URL passwords in any attribute).
 */
export function maskAttributes(attrs: ConnectionAttributes): Record<string, unknown> {
  return maskObject(attrs, 0)
}

function maskObject(obj: object, depth: number): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(obj)) {
    Object.defineProperty(out, k, {
      value: isSecretAttribute(k) ? '***' : maskValue(v, depth + 1),
      enumerable: true,
      writable: true,
      configurable: true,
    })
  }
  return out
}

function maskValue(v: unknown, depth: number): unknown {
  if (typeof v === 'string') return redact(v)
  if (!v || typeof v !== 'object') return v
  // Deeper than any real connection setting: shown as a placeholder rather than walked.
  if (depth > 20) return '[nested]'
  if (Array.isArray(v)) return v.map((x) => maskValue(x, depth + 1))
  return maskObject(v, depth)
}

const PREFIX = 'ACHVY_CNXN__'

/** The env var prefix of connection `id` (`''` = the default connection). */
export function connectionEnvPrefix(id: string): string {
  return id ? `${PREFIX}${id.toUpperCase()}__` : PREFIX
}

/**
 * Reads the attributes of connection `id` from the environment: `ACHVY_CNXN__<ID>__<ATTR>` (or
 * `ACHVY_CNXN__<ATTR>` for the default connection) plus the JSON object in `…__JSONDATA`.
 */
export function readConnectionAttributes(env: NodeJS.ProcessEnv, id: string): Record<string, unknown> | undefined {
  const prefix = connectionEnvPrefix(id)
  // Attribute names come from the environment and JSONDATA: no prototype, so `__proto__` or `constructor` is just a name.
  const attrs: Record<string, unknown> = Object.create(null) as Record<string, unknown>
  let found = false
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined || !name.toUpperCase().startsWith(prefix)) continue
    const rest = name.slice(prefix.length)
    if (!rest || (id === '' && rest.includes('__'))) continue
    found = true
    if (rest.toUpperCase() === 'JSONDATA') {
      try {
        const obj = JSON.parse(value) as unknown
        if (obj && typeof obj === 'object' && !Array.isArray(obj)) {
          for (const [k, v] of Object.entries(obj)) attrs[k.toLowerCase()] = v
        }
      } catch {
        throw new Error(`${name} must be a JSON object`)
      }
    } else {
      attrs[rest.toLowerCase()] = value
    }
  }
  return found ? attrs : undefined
}

/** Registers every secret found in `ACHVY_CNXN__*` variables so it is masked in all output. */
export function registerConnectionSecrets(env: NodeJS.ProcessEnv): void {
  for (const [name, value] of Object.entries(env)) {
    if (!value || !name.toUpperCase().startsWith(PREFIX)) continue
    const attr = name.slice(name.lastIndexOf('__') + 2)
    registerUrlSecrets(value)
    if (attr.toUpperCase() === 'JSONDATA') {
      registerJsonSecrets(value)
    } else if (isSecretAttribute(attr)) {
      registerSecret(value)
    }
  }
}

function registerJsonSecrets(text: string): void {
  let obj: unknown
  try {
    obj = JSON.parse(text)
  } catch {
    registerSecret(text)
    return
  }
  const walk = (v: unknown, key: string, depth: number): void => {
    if (typeof v === 'string') {
      registerUrlSecrets(v)
      if (isSecretAttribute(key)) registerSecret(v)
    } else if (typeof v === 'number' || typeof v === 'boolean') {
      if (isSecretAttribute(key)) registerSecret(String(v))
    } else if (v && typeof v === 'object') {
      // Nested deeper than any real setting: the whole text is the secret then.
      if (depth > 50) return registerSecret(text)
      for (const [k, x] of Object.entries(v)) walk(x, k, depth + 1)
    }
  }
  walk(obj, '', 0)
}
