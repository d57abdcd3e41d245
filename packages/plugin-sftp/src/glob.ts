import { SftpError } from './errors.js'
import { isNotFound, type RemoteEntry, type RemoteFile, type RemoteFs } from './remote-fs.js'

/** A table `path` split into its literal folder and the pattern segments below it. */
export interface CompiledGlob {
  /** The leading segments without wildcards, joined (`''` = the base). */
  readonly root: string
  readonly segments: readonly (RegExp | '**')[]
}

/**
 * Compiles a glob: `*` and `?` within a segment, `[abc]`/`[!abc]`, `{a,b}`, and `**` for any number of folders.
 * Wildcards do not match names starting with `.` (upload tools write `.name.part` files), unless the pattern does.
 */
export function compileGlob(pattern: string): CompiledGlob {
  const parts = pattern.split('/').filter((p) => p !== '' && p !== '.')
  const magic = /[*?[{]/
  let i = 0
  while (i < parts.length - 1 && !magic.test(parts[i]!)) i++
  const root = parts.slice(0, i).join('/')
  const segments = parts.slice(i).map((p) => (p === '**' ? '**' : segmentRegExp(p)))
  return { root, segments }
}

function segmentRegExp(seg: string): RegExp {
  let re = seg.startsWith('.') ? '' : '(?!\\.)'
  for (let i = 0; i < seg.length; i++) {
    const c = seg[i]!
    if (c === '*') re += '[^/]*'
    else if (c === '?') re += '[^/]'
    else if (c === '[') {
      const end = seg.indexOf(']', i + 2)
      if (end < 0) re += '\\['
      else {
        let body = seg.slice(i + 1, end)
        if (body.startsWith('!')) body = `^${body.slice(1)}`
        re += `[${body.replace(/\\/g, '\\\\')}]`
        i = end
      }
    } else if (c === '{') {
      const end = seg.indexOf('}', i)
      if (end < 0) re += '\\{'
      else {
        re += `(?:${seg.slice(i + 1, end).split(',').map(escapeRe).join('|')})`
        i = end
      }
    } else re += escapeRe(c)
  }
  return new RegExp(`^${re}$`)
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

/**
 * Lists the files matching `pattern` (relative to the base). The literal root folder must exist (else
 * ANCH_ERR_SFTP_PATH); folders that vanish during the walk are skipped. `exclude` is a folder prefix to leave
 * out (the `after: move:` target). Files come back in (mtime, path) order.
 */
export async function listMatches(fs: RemoteFs, pattern: string, exclude?: string): Promise<RemoteFile[]> {
  const glob = compileGlob(pattern)
  const out: RemoteFile[] = []
  const join = (dir: string, name: string): string => (dir ? `${dir}/${name}` : name)
  const excluded = (path: string): boolean => exclude !== undefined && (path === exclude || path.startsWith(`${exclude}/`))

  const resolve = async (dir: string, e: RemoteEntry): Promise<RemoteEntry> => {
    if (e.type !== 'link') return e
    try {
      return { ...(await fs.stat(join(dir, e.name))), name: e.name }
    } catch {
      return { ...e, type: 'other' }
    }
  }
  const walk = async (dir: string, i: number, entries: RemoteEntry[]): Promise<void> => {
    const seg = glob.segments[i]
    if (seg === undefined) return
    const last = i === glob.segments.length - 1
    for (const raw of entries) {
      const path = join(dir, raw.name)
      if (excluded(path)) continue
      if (seg === '**') {
        if (raw.name.startsWith('.')) continue
        const e = await resolve(dir, raw)
        if (last && e.type === 'file') out.push({ path, size: e.size, mtime: e.mtime })
        if (e.type === 'dir') {
          const sub = await listOrSkip(path)
          if (sub) await walk(path, i, sub)
        }
        continue
      }
      if (!seg.test(raw.name)) continue
      const e = await resolve(dir, raw)
      if (last && e.type === 'file') out.push({ path, size: e.size, mtime: e.mtime })
      else if (!last && e.type === 'dir') {
        const sub = await listOrSkip(path)
        if (sub) await walk(path, i + 1, sub)
      }
    }
    // `**` also matches zero folders: the next segment applies here too.
    if (seg === '**') await walk(dir, i + 1, entries)
  }
  const listOrSkip = async (dir: string): Promise<RemoteEntry[] | undefined> => {
    try {
      return await fs.list(dir)
    } catch (err) {
      if (isNotFound(err)) return undefined
      throw err
    }
  }

  let top: RemoteEntry[]
  try {
    top = await fs.list(glob.root)
  } catch (err) {
    if (isNotFound(err)) {
      throw new SftpError('ANCH_ERR_SFTP_PATH', `folder ${JSON.stringify(`/${glob.root}`)} (from path ${JSON.stringify(`/${pattern}`)}) does not exist on the server`, { cause: err })
    }
    throw err
  }
  await walk(glob.root, 0, top)
  return out.sort((a, b) => a.mtime - b.mtime || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
}
