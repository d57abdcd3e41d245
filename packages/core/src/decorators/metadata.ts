import 'reflect-metadata'
import type { TaskPhase } from '../types.js'

/** Metadata keys, all in one place. */
export const META = {
  streams: Symbol.for('anchovies:streams'),
  hooks: Symbol.for('anchovies:hooks'),
  connections: Symbol.for('anchovies:connections'),
} as const

/** What `@source`/`@sink` recorded on one method. */
export interface StreamMeta {
  source?: string
  sinks: string[]
}

/** What `@connection` recorded on one property. */
export interface ConnectionMeta {
  readonly property: string
  readonly id: string
  readonly cls?: new (attrs: Record<string, unknown>) => unknown
  readonly optional: boolean
}

type Proto = object

function ownMap<V>(key: symbol, target: Proto): Map<string, V> {
  let map = Reflect.getOwnMetadata(key, target) as Map<string, V> | undefined
  if (!map) {
    map = new Map()
    Reflect.defineMetadata(key, map, target)
  }
  return map
}

/** Records stream metadata for a method (used by `@source` and `@sink`). */
export function addStream(target: Proto, method: string, update: (meta: StreamMeta) => void): void {
  const map = ownMap<StreamMeta>(META.streams, target)
  const meta = map.get(method) ?? { sinks: [] }
  update(meta)
  map.set(method, meta)
}

/** Records an `@onTask` hook. */
export function addHook(target: Proto, method: string, phase: TaskPhase): void {
  const map = ownMap<TaskPhase[]>(META.hooks, target)
  map.set(method, [...(map.get(method) ?? []), phase])
}

/** Records an `@connection` property. */
export function addConnection(target: Proto, meta: ConnectionMeta): void {
  ownMap<ConnectionMeta>(META.connections, target).set(meta.property, meta)
}

/**
 * Reads per-member metadata along the prototype chain. For methods, the most derived class that defines a
 * method decides: redefining a decorated method without the decorator removes it (how a subclass turns off
 * the built-in default sink). Results are ordered base class first.
 */
export function readMembers<V>(key: symbol, instance: object, methodsOnly: boolean): Map<string, V> {
  const chain: Proto[] = []
  for (
    let p = Object.getPrototypeOf(instance) as Proto | null;
    p && p !== Object.prototype;
    p = Object.getPrototypeOf(p) as Proto | null
  )
    chain.push(p)
  const decided = new Set<string>()
  const found = new Map<string, V>()
  for (const proto of chain) {
    const own = Reflect.getOwnMetadata(key, proto) as Map<string, V> | undefined
    const names = methodsOnly ? Object.getOwnPropertyNames(proto) : [...(own?.keys() ?? [])]
    for (const name of names) {
      if (decided.has(name)) continue
      decided.add(name)
      const v = own?.get(name)
      if (v !== undefined) found.set(name, v)
    }
  }
  return new Map([...found.entries()].reverse())
}
