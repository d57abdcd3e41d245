/** A database URL split the way sql.Uploader reads it. */
export interface DbUrl {
  /** The scheme as written (`postgresql+psycopg2`), without `:`. */
  readonly scheme: string
  /** User info as written (before the password's `:`), or undefined when the URL has none. */
  readonly rawUser: string | undefined
  /** User name, percent-decoded. */
  readonly user: string | undefined
  /** Password, percent-decoded when it is valid percent-encoding, else as written; undefined when there is none. */
  readonly password: string | undefined
  /** `host[:port]` as written (may be empty). */
  readonly host: string
  /** Everything after the host: path, query and fragment. */
  readonly rest: string
  /** False when no reading gives a valid host and path (then host and rest may hold pieces of the password). */
  readonly valid: boolean
}

/**
 * Splits `scheme://user:password@host:port/path?query`. A password that is not percent-encoded (`p@ss:w/rd%?#`)
 * is read whole instead of being cut at its first `/`, `?`, `#` or `@` the way a URL parser cuts it: the user info
 * ends at the `@` the RFC parse finds when what follows it is a valid host, port and path, else at the last `@`
 * that is followed by one (an `@` in the query string, allowed by the RFC, then stays in the query).
 * Undefined when `url` has no `scheme://`.
 */
export function splitDbUrl(url: string): DbUrl | undefined {
  const sep = url.indexOf('://')
  if (sep <= 0 || !isScheme(url, sep)) return undefined
  const scheme = url.slice(0, sep)
  const start = sep + 3
  // `scheme:///path` has no authority (SQLite files, sockets).
  const bad = lastBadChar(url)
  const at = url.charCodeAt(start) === 47 ? -1 : credentialsEnd(url, start, bad)
  let rawUser: string | undefined
  let password: string | undefined
  let hostStart = start
  if (at >= start) {
    const info = url.slice(start, at)
    const colon = info.indexOf(':')
    rawUser = colon < 0 ? info : info.slice(0, colon)
    if (colon >= 0) password = decodeLenient(info.slice(colon + 1))
    hostStart = at + 1
  }
  const hostEnd = authorityEnd(url, hostStart)
  return {
    scheme,
    rawUser,
    user: rawUser === undefined ? undefined : decodeLenient(rawUser),
    password,
    host: url.slice(hostStart, hostEnd),
    rest: url.slice(hostEnd),
    valid: validAfter(url, hostStart, bad),
  }
}

/** Where the user info of the URL whose authority starts at `start` ends (its `@`), or -1 when it has none. */
function credentialsEnd(url: string, start: number, bad: number): number {
  const rfc = url.lastIndexOf('@', authorityEnd(url, start) - 1)
  if (rfc >= start && validAfter(url, rfc + 1, bad)) return rfc
  // Else the last `@` followed by a valid host. Each check stops at the first character a host cannot hold (an
  // `@` among them), so this stays linear however many `@` the URL holds.
  const last = url.lastIndexOf('@')
  for (let i = last; i >= start && i > rfc; i = url.lastIndexOf('@', i - 1)) if (validAfter(url, i + 1, bad)) return i
  // No reading is valid: the last `@`, so that whatever could be password counts as password.
  return last
}

function authorityEnd(url: string, from: number): number {
  let i = from
  while (i < url.length && !'/?#'.includes(url[i]!)) i++
  return i
}

/** The last position holding whitespace, a control character or a `%` not followed by two hex digits (-1: none). */
function lastBadChar(url: string): number {
  for (let i = url.length - 1; i >= 0; i--) {
    const c = url.charCodeAt(i)
    if (c <= 32 || c === 127 || (c === 37 && !(isHex(url.charCodeAt(i + 1)) && isHex(url.charCodeAt(i + 2))))) return i
  }
  return -1
}

/**
 * Whether a valid `host[:port]` (name, IPv4 or `[IPv6]`, or empty) starts at `from` and runs to the end or to a
 * `/`, `?` or `#`, and nothing after `from` is a character a URL cannot hold (`bad` from lastBadChar).
 */
function validAfter(url: string, from: number, bad: number): boolean {
  if (bad >= from) return false
  let i = from
  if (url.charCodeAt(i) === 91) {
    for (i++; i < url.length && url.charCodeAt(i) !== 93; i++)
      if (!isHex(url.charCodeAt(i)) && url[i] !== ':' && url[i] !== '.') return false
    if (i >= url.length) return false
    i++
  } else {
    for (; i < url.length; i++) {
      const c = url.charCodeAt(i)
      const ok =
        (c >= 48 && c <= 57) ||
        ((c | 32) >= 97 && (c | 32) <= 122) ||
        c === 46 ||
        c === 45 ||
        c === 95 ||
        c === 126 ||
        c === 37
      if (!ok) break
    }
  }
  if (i < url.length && url.charCodeAt(i) === 58) {
    const portStart = ++i
    while (i < url.length && url.charCodeAt(i) >= 48 && url.charCodeAt(i) <= 57) i++
    if (i === portStart) return false
  }
  return i === url.length || '/?#'.includes(url[i]!)
}

function isHex(c: number): boolean {
  return (c >= 48 && c <= 57) || ((c | 32) >= 97 && (c | 32) <= 102)
}

/**
 * The same URL with user and password percent-encoded exactly once, so that any URL parser (the drivers', WHATWG)
 * reads the credentials `splitDbUrl` read and never takes part of a password for a host, port or path.
 */
export function normalizedDbUrl(u: DbUrl): string {
  if (u.user === undefined) return `${u.scheme}://${u.host}${u.rest}`
  const password = u.password === undefined ? '' : `:${encodeURIComponent(u.password)}`
  return `${u.scheme}://${encodeURIComponent(u.user)}${password}@${u.host}${u.rest}`
}

/** Where a connection URL points, for messages: scheme, user, host and path; never the password or the query. */
export function describeUrl(url: string): string {
  const u = splitDbUrl(url)
  if (!u) {
    const colon = url.indexOf(':')
    return colon > 0 && isScheme(url, colon) ? `${url.slice(0, colon)}:…` : '(not a URL)'
  }
  if (!u.valid) return `${u.scheme}://${u.rawUser === undefined ? '' : '***@'}(an address that cannot be read)`
  const user = u.rawUser === undefined ? '' : `${u.rawUser}${u.password === undefined ? '' : ':***'}@`
  let pathEnd = 0
  while (pathEnd < u.rest.length && u.rest[pathEnd] !== '?' && u.rest[pathEnd] !== '#') pathEnd++
  return `${u.scheme}://${user}${u.host}${u.rest.slice(0, pathEnd)}`
}

/** Whether `s[0, end)` is a URL scheme: a letter, then letters, digits, `+`, `-` or `.`. */
function isScheme(s: string, end: number): boolean {
  for (let i = 0; i < end; i++) {
    const c = s.charCodeAt(i) | 32
    const letter = c >= 97 && c <= 122
    if (i === 0 ? !letter : !(letter || (s.charCodeAt(i) >= 48 && s.charCodeAt(i) <= 57) || '+-.'.includes(s[i]!)))
      return false
  }
  return end > 0
}

function decodeLenient(s: string): string {
  try {
    return decodeURIComponent(s)
  } catch {
    return s
  }
}
