import { AnchoviesError } from './errors.js'

const NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_\-.]{0,127}$/
const KEY_RE = /^[A-Za-z0-9_$][A-Za-z0-9_\-.$@=+:]{0,199}$/

/** What a validated name is used as, for the error message. */
export type NameKind = 'anchovy id' | 'user' | 'table name' | 'checkpoint key' | 'upstream id'

/**
 * Checks a name that becomes one path segment in the datastore (ids, users, table names):
 * letters, digits, `_`, `-` and `.`, not starting with `.`, no `..`, no separators or control characters.
 */
export function validateName(kind: NameKind, value: string): string {
  const re = kind === 'checkpoint key' ? KEY_RE : NAME_RE
  if (typeof value !== 'string' || !re.test(value) || value.includes('..')) {
    throw new AnchoviesError(
      'ANCH_ERR_NAME',
      `invalid ${kind} ${JSON.stringify(String(value).slice(0, 80))}: use letters, digits, "_", "-"` +
        `${kind === 'checkpoint key' ? ', "."' : ' and "."'}; no "/", "\\", "..", leading "." or control characters`,
    )
  }
  return value
}

/** Returns the problem with a name, or undefined when it is valid (for collecting config problems). */
export function nameProblem(kind: NameKind, value: string): string | undefined {
  try {
    validateName(kind, value)
    return undefined
  } catch (err) {
    return (err as Error).message
  }
}

/** Joins validated segments into a datastore path, refusing anything that could leave the anchovy's root. */
export function joinPath(...segments: string[]): string {
  const parts: string[] = []
  for (const seg of segments) {
    for (const part of seg.split('/')) {
      if (part === '') continue
      if (part === '.' || part === '..' || /[\u0000-\u001f\\]/.test(part)) {
        throw new AnchoviesError('ANCH_ERR_NAME', `refusing datastore path segment ${JSON.stringify(part)}`)
      }
      parts.push(part)
    }
  }
  return parts.join('/')
}
