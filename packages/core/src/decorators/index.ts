import { addConnection, addHook, addStream } from './metadata.js'
import type { TaskPhase } from '../types.js'
import { TASK_PHASES } from '../types.js'
import { AnchoviesError } from '../errors.js'

/**
 * Marks an async generator as the source of rows for `table` (default `*`: every table; globs allow `*`, `?`, `[…]`).
 * Stacked on `@sink`, the method is a transform: it consumes the sink's rows and produces the source's table.
 */
export function source(table = '*'): MethodDecorator {
  return (target, key) => addStream(target, String(key), (m) => void (m.source = table))
}

/** Marks a method as a consumer of the rows of `table` (default `*`: every table); it receives an `AsyncIterable`. */
export function sink(table = '*'): MethodDecorator {
  return (target, key) => addStream(target, String(key), (m) => void m.sinks.push(table))
}

/** Runs the method in the given lifecycle phase (`startup`, `xopen`, `xclose`, `shutdown`, `error`). */
export function onTask(phase: TaskPhase): MethodDecorator {
  if (!(TASK_PHASES as readonly string[]).includes(phase)) {
    throw new AnchoviesError(
      'ANCH_ERR_CONFIG',
      `@onTask: unknown phase ${JSON.stringify(phase)} (use ${TASK_PHASES.join(', ')})`,
    )
  }
  return (target, key) => addHook(target, String(key), phase)
}

/** Options of `@connection`. */
export interface ConnectionOptions {
  /** Start without it when no `ACHVY_CNXN__<ID>__*` variable is set (the property stays undefined). */
  optional?: boolean
}

/**
 * Injects a connection built from `ACHVY_CNXN__<ID>__<ATTR>` variables (`id` omitted or `''`: the default
 * connection, `ACHVY_CNXN__<ATTR>`). The class comes from `cls` or from the plugin's `connections` map.
 */
export function connection(
  id = '',
  cls?: new (attrs: Record<string, unknown>) => unknown,
  options: ConnectionOptions = {},
): PropertyDecorator {
  return (target, key) =>
    addConnection(target, { property: String(key), id, ...(cls ? { cls } : {}), optional: options.optional ?? false })
}
