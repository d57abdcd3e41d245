import type { DatastoreFactory } from '../datastore/datastore.js'
import type { Operator } from '../operators/operator.js'

/** What a plugin provides. */
export interface PluginDefinition {
  /** Short name used in `-op <name>.<Class>`. */
  readonly name: string
  readonly operators?: Readonly<Record<string, new () => Operator>>
  /** Connection classes by connection id (`''`/`default` = the default connection). */
  readonly connections?: Readonly<Record<string, new (attrs: Record<string, unknown>) => unknown>>
  /** Datastore backends for `--datastore` URLs (e.g. `az://`). */
  readonly datastores?: readonly DatastoreFactory[]
  /** Store classes for `--checkpoint-cls`, `--task-store-cls`, `--tbl-store-cls`, `--data-buffer-cls`. */
  readonly components?: Readonly<Record<string, new (...args: never[]) => unknown>>
  /** The plugin's own error codes (`ANCH_ERR_<AREA>_<WHAT>`): a description, or `[meaning, how to fix]`; rendered into docs/errors.md. */
  readonly errors?: Readonly<Record<`ANCH_ERR_${string}`, PluginErrorDoc>>
}

/** What docs/errors.md says about a plugin's error code: a description, or its meaning and how to fix it. */
export type PluginErrorDoc = string | readonly [meaning: string, fix: string]

/** A loaded plugin. */
export type Plugin = PluginDefinition & { readonly __anchoviesPlugin: true }

/** Declares a plugin; a package default-exports the result. */
export function definePlugin(definition: PluginDefinition): Plugin {
  return Object.freeze({ ...definition, __anchoviesPlugin: true as const })
}

/** True when `value` was made by definePlugin. */
export function isPlugin(value: unknown): value is Plugin {
  return typeof value === 'object' && value !== null && (value as Plugin).__anchoviesPlugin === true
}
