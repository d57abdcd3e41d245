import { hostname, userInfo } from 'node:os'

/** An own property of an object indexed by a name from outside (env, config, flags); never an inherited member. */
export function ownValue<T>(obj: Readonly<Record<string, T>> | NodeJS.ProcessEnv, key: string): T | undefined {
  return Object.hasOwn(obj, key) ? (obj as Record<string, T>)[key] : undefined
}

/**
 * The home directory: `$HOME` when set, else the password database's entry. Undefined when neither exists
 * (a container running under a uid the image has no passwd entry for, with HOME unset): callers then ask for
 * an explicit location instead of crashing in `uv_os_get_passwd`.
 */
export function homeDirectory(env: NodeJS.ProcessEnv): string | undefined {
  const home = ownValue(env, 'HOME')
  if (typeof home === 'string' && home !== '') return home
  try {
    return userInfo().homedir || undefined
  } catch {
    return undefined
  }
}

/**
 * The OS user name for the default anchovy user: `$USER`, `$LOGNAME`, `$USERNAME`, the password database, then
 * the numeric uid (a uid without a passwd entry still names one user), then the host name (no uid: Windows).
 */
export function osUserName(env: NodeJS.ProcessEnv): string {
  for (const name of ['USER', 'LOGNAME', 'USERNAME']) {
    const v = ownValue(env, name)
    if (typeof v === 'string' && v !== '') return v
  }
  try {
    const name = userInfo().username
    if (name) return name
  } catch {
    // no passwd entry for this uid
  }
  const uid = process.getuid?.()
  if (uid !== undefined) return String(uid)
  return hostname().replace(/\.local$/, '')
}

/** Why there is no home directory, for error messages. */
export function noHomeReason(): string {
  const uid = process.getuid?.()
  return `HOME is not set and ${uid === undefined ? 'this user' : `uid ${uid}`} has no home directory in the password database`
}
