import type { JsonValue } from '@anchovies/core'

/** One stream of a Singer catalog, as the tap described it. */
export interface CatalogStream {
  /** The stream name its RECORD messages carry (`stream`, else `tap_stream_id`). */
  readonly name: string
  readonly schema: unknown
  readonly keyProperties: readonly string[]
  readonly bookmarkProperties: readonly string[]
}

const isObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v)
const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [])

/** The stream-level metadata entry (`breadcrumb: []`) of a catalog stream, if any. */
function streamMetadata(stream: Record<string, unknown>): Record<string, unknown> | undefined {
  const list = Object.hasOwn(stream, 'metadata') && Array.isArray(stream.metadata) ? stream.metadata : []
  for (const m of list) {
    if (isObject(m) && Array.isArray(m.breadcrumb) && m.breadcrumb.length === 0 && isObject(m.metadata))
      return m.metadata
  }
  return undefined
}

/** The streams of a catalog (`{"streams": [...]}`); entries that name no stream are skipped. */
export function catalogStreams(catalog: unknown): CatalogStream[] {
  if (!isObject(catalog) || !Array.isArray(catalog.streams)) return []
  const out: CatalogStream[] = []
  for (const s of catalog.streams) {
    if (!isObject(s)) continue
    const name =
      typeof s.stream === 'string' && s.stream
        ? s.stream
        : typeof s.tap_stream_id === 'string'
          ? s.tap_stream_id
          : undefined
    if (!name) continue
    const meta = streamMetadata(s)
    const keys = strings(s.key_properties).length ? strings(s.key_properties) : strings(meta?.['table-key-properties'])
    const replicationKey = meta?.['replication-key']
    out.push({
      name,
      schema: s.schema,
      keyProperties: keys,
      bookmarkProperties: typeof replicationKey === 'string' ? [replicationKey] : strings(s.bookmark_properties),
    })
  }
  return out
}

/** Whether a value is a Singer catalog (an object with a `streams` list). */
export function isCatalog(value: unknown): value is Record<string, JsonValue> {
  return isObject(value) && Array.isArray(value.streams)
}

/**
 * A copy of `catalog` in which exactly the streams `selected` accepts are selected (stream-level metadata
 * `selected`, and the legacy `schema.selected`); the base catalog itself is left as the tap described it.
 */
export function selectStreams(catalog: unknown, selected: (stream: string) => boolean): unknown {
  if (!isObject(catalog) || !Array.isArray(catalog.streams)) return catalog
  const copy = structuredClone(catalog)
  for (const s of copy.streams as unknown[]) {
    if (!isObject(s)) continue
    const name =
      typeof s.stream === 'string' && s.stream ? s.stream : typeof s.tap_stream_id === 'string' ? s.tap_stream_id : ''
    const on = selected(name)
    let meta = streamMetadata(s)
    if (!meta) {
      meta = {}
      const list = Array.isArray(s.metadata) ? s.metadata : (s.metadata = [])
      ;(list as unknown[]).push({ breadcrumb: [], metadata: meta })
    }
    meta.selected = on
    if (isObject(s.schema)) s.schema.selected = on
  }
  return copy
}
