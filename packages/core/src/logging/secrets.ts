const secrets = new Set<string>()
/** The registered secrets, longest first (so a secret holding another is masked whole). */
let ordered: string[] | undefined

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
  const json = JSON.stringify(value).slice(1, -1)
  // JSON-escaped twice: a message quoting a value with JSON.stringify, written as a JSON log line.
  const forms = [value, json, JSON.stringify(json).slice(1, -1)]
  try {
    forms.push(encodeURIComponent(value))
  } catch {
    // a lone surrogate has no URL-encoded form
  }
  for (const v of forms) secrets.add(v)
  ordered = undefined
}

/**
 * Registers the password of every URL inside `value` (`scheme://user:password@host…`, or a whole value shaped
 * `user:password@host`). The password is taken as everything from the first `:` of the user info to the **last**
 * `@` before the host, so a password that is not percent-encoded (`p@ss:w/rd%?#`) is registered whole, whatever a
 * URL parser would make of it; so are its decoded and re-encoded forms and, when it holds `@ / ? #`, the pieces
 * between them that a parser could show as a host, port or path.
 */
export function registerUrlSecrets(value: string): void {
  if (typeof value !== 'string') return
  for (const password of urlPasswords(value)) {
    registerSecret(password)
    try {
      registerSecret(decodeURIComponent(password))
    } catch {
      // not percent-encoded: the raw form is registered already
    }
    try {
      const u = new URL('x://h')
      u.password = password
      registerSecret(u.password)
    } catch {
      // no WHATWG form
    }
    if (hasAny(password, '@/?#')) for (const piece of splitAny(password, '@:/?#')) registerSecret(piece)
  }
}

/**
 * The passwords of the URLs in `value`: for each `://`, the text up to the next `://` is one URL; its user info
 * runs to its last `@`. A value without `://` counts as one `user:password@host` when it starts like user info.
 */
function urlPasswords(value: string): string[] {
  const out: string[] = []
  let sep = value.indexOf('://')
  if (sep < 0) {
    const v = value.trim()
    const colon = v.indexOf(':')
    const at = v.lastIndexOf('@')
    if (colon > 0 && at > colon && isUserName(v, 0, colon)) out.push(v.slice(colon + 1, at))
    return out
  }
  while (sep >= 0) {
    const start = sep + 3
    const next = value.indexOf('://', start)
    const end = next < 0 ? value.length : next
    // `scheme:///path` has no authority (SQLite and file URLs).
    if (value.charCodeAt(start) !== 47) {
      const at = value.lastIndexOf('@', end - 1)
      if (at >= start) {
        const colon = value.indexOf(':', start)
        if (colon >= 0 && colon < at) out.push(value.slice(colon + 1, at))
      }
    }
    // `?password=…`, `&sslkey=…`: query parameters named like secrets.
    for (let q = value.indexOf('?', start); q >= 0 && q < end; q = value.indexOf('&', q + 1)) {
      const eq = value.indexOf('=', q + 1)
      if (eq < 0 || eq >= end || !isSecretAttribute(value.slice(q + 1, eq))) continue
      const amp = value.indexOf('&', eq + 1)
      out.push(value.slice(eq + 1, amp >= 0 && amp < end ? amp : end), value.slice(eq + 1, end))
    }
    sep = next
  }
  return out
}

/** Whether `s[from, to)` is a plausible URL user name (RFC 3986 user info characters, no `:`). */
function isUserName(s: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i)
    const ok =
      (c >= 48 && c <= 57) ||
      (c >= 65 && c <= 90) ||
      (c >= 97 && c <= 122) ||
      c > 127 ||
      "-._~!$&'()*+,;=%".includes(s[i]!)
    if (!ok) return false
  }
  return true
}

function hasAny(s: string, chars: string): boolean {
  for (let i = 0; i < s.length; i++) if (chars.includes(s[i]!)) return true
  return false
}

function splitAny(s: string, chars: string): string[] {
  const out: string[] = []
  let from = 0
  for (let i = 0; i <= s.length; i++) {
    if (i === s.length || chars.includes(s[i]!)) {
      out.push(s.slice(from, i))
      from = i + 1
    }
  }
  return out
}

/**
 * Masks every registered secret in `text`, then the password part of any `scheme://user:password@host` URL in it:
 * from the first `:` after `://` to the last `@` before the URL ends (at whitespace, a quote or an angle bracket).
 */
export function redact(text: string): string {
  let out = text
  if (secrets.size > 0) {
    ordered ??= [...secrets].sort((a, b) => b.length - a.length)
    // Plain substring replacement: no pattern to build, whatever the secrets hold and however long they are.
    for (const secret of ordered) if (out.includes(secret)) out = out.split(secret).join(MASK)
  }
  return maskUrlCredentials(out)
}

/** One pass over `text` (no regular expression: log lines carry untrusted data). */
function maskUrlCredentials(text: string): string {
  let sep = text.indexOf('://')
  if (sep < 0) return text
  let out = ''
  let copied = 0
  while (sep >= 0) {
    const start = sep + 3
    let colon = -1
    let at = -1
    let end = start
    for (; end < text.length; end++) {
      const c = text.charCodeAt(end)
      // whitespace, control characters, quotes and angle brackets end a URL in free text
      if (c <= 32 || c === 34 || c === 39 || c === 60 || c === 62 || c === 96 || c === 127) break
      if (c === 58 && colon < 0) colon = end
      else if (c === 64) at = end
    }
    if (colon >= 0 && at > colon && text.slice(colon + 1, at) !== MASK) {
      out += text.slice(copied, colon + 1) + MASK
      copied = at
    }
    sep = text.indexOf('://', Math.max(end, start))
  }
  return copied === 0 ? text : out + text.slice(copied)
}

/** Forgets every registered secret (tests). */
export function clearSecrets(): void {
  secrets.clear()
  ordered = undefined
}
