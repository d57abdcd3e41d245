const secrets = new Set<string>()
let pattern: RegExp | undefined

const SECRET_ATTR = /pass|secret|token|key|credential|sas|signature|auth|jsondata|connection_?string|cookie|private/i
const NOT_SECRET_ATTR = /(_path|_file|_name|_id|_user)$/i
const MASK = '***'

/** True when a connection attribute name holds a secret (passwords, keys, tokens, JSONDATA, …). */
export function isSecretAttribute(name: string): boolean {
  return SECRET_ATTR.test(name) && !NOT_SECRET_ATTR.test(name)
}

/**
 * Registers a secret value: from now on it (and its JSON-escaped and URL-encoded forms) is masked in every log
 * line, task log, result and error message anchovies writes. Values shorter than 4 characters are masked only
 * inside URLs, because masking them everywhere would garble the logs.
 */
export function registerSecret(value: string): void {
  if (typeof value !== 'string' || value.length < 4) return
  for (const v of [value, JSON.stringify(value).slice(1, -1), encodeURIComponent(value)]) secrets.add(v)
  pattern = undefined
}

/** Registers the password (and user-info) of every URL inside `value`. */
export function registerUrlSecrets(value: string): void {
  for (const m of value.matchAll(/[a-z][a-z0-9+.-]*:\/\/([^/@\s]+)@/gi)) {
    const userinfo = m[1] ?? ''
    const colon = userinfo.indexOf(':')
    if (colon >= 0) {
      const pw = userinfo.slice(colon + 1)
      registerSecret(pw)
      try {
        registerSecret(decodeURIComponent(pw))
      } catch {
        // not percent-encoded: the raw form is registered already
      }
    }
  }
}

/** Masks every registered secret in `text`, and the password part of any `scheme://user:pass@` URL. */
export function redact(text: string): string {
  let out = text.replace(/([a-z][a-z0-9+.-]*:\/\/[^/:@\s"]+):([^/@\s"]+)@/gi, `$1:${MASK}@`)
  if (secrets.size === 0) return out
  pattern ??= new RegExp([...secrets].sort((a, b) => b.length - a.length).map(escapeRe).join('|'), 'g')
  out = out.replace(pattern, MASK)
  return out
}

/** Forgets every registered secret (tests). */
export function clearSecrets(): void {
  secrets.clear()
  pattern = undefined
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}
