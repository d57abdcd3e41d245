import { SftpError } from './errors.js'
import { isInside, isNotFound, type RemoteEntry, type RemoteFile, type RemoteFs } from './remote-fs.js'

/** Matches one path segment (a file or folder name) against a glob segment, in time linear in the name. */
export interface SegmentMatcher {
  test(name: string): boolean
}

/** A table `path` split into its literal folder and the pattern segments below it. */
export interface CompiledGlob {
  /** The leading segments without wildcards, joined (`''` = the base). */
  readonly root: string
  readonly segments: readonly (SegmentMatcher | '**')[]
}

/**
 * Compiles a glob: `*` and `?` within a segment, `[abc]`/`[a-z]`/`[!abc]`, `{a,b}`, and `**` for any number of
 * folders. Wildcards do not match names starting with `.` (upload tools write `.name.part` files), unless the
 * pattern does. Names are matched by a small automaton, not a regular expression: a name from the server is
 * untrusted, and `*_*_*_*.csv` as a regular expression backtracks polynomially on a long name.
 */
export function compileGlob(pattern: string): CompiledGlob {
  const parts = pattern.split('/').filter((p) => p !== '' && p !== '.')
  let i = 0
  while (i < parts.length - 1 && !isMagic(parts[i]!)) i++
  const root = parts.slice(0, i).join('/')
  const segments = parts.slice(i).map((p) => (p === '**' ? '**' : segmentMatcher(p)))
  return { root, segments }
}

function isMagic(segment: string): boolean {
  for (const c of '*?[{') if (segment.includes(c)) return true
  return false
}

/** One token of a glob segment. */
type Token =
  | { readonly kind: 'star' }
  | { readonly kind: 'one' }
  | { readonly kind: 'class'; readonly negated: boolean; readonly ranges: readonly (readonly [number, number])[] }
  /** Literal text, or `{a,b}` alternatives (each literal). */
  | { readonly kind: 'text'; readonly options: readonly string[] }

function tokenize(seg: string): Token[] {
  const tokens: Token[] = []
  let literal = ''
  const flush = (): void => {
    if (literal) tokens.push({ kind: 'text', options: [literal] })
    literal = ''
  }
  for (let i = 0; i < seg.length; i++) {
    const c = seg[i]!
    if (c === '*') {
      flush()
      if (tokens.at(-1)?.kind !== 'star') tokens.push({ kind: 'star' })
    } else if (c === '?') {
      flush()
      tokens.push({ kind: 'one' })
    } else if (c === '[' && seg.indexOf(']', i + 2) >= 0) {
      const end = seg.indexOf(']', i + 2)
      let body = seg.slice(i + 1, end)
      const negated = body.startsWith('!') || body.startsWith('^')
      if (negated) body = body.slice(1)
      const ranges: [number, number][] = []
      for (let k = 0; k < body.length; k++) {
        const from = body.codePointAt(k)!
        if (from > 0xffff) k++
        if (body[k + 1] === '-' && k + 2 < body.length) {
          const to = body.codePointAt(k + 2)!
          ranges.push([from, to])
          k += to > 0xffff ? 3 : 2
        } else ranges.push([from, from])
      }
      flush()
      tokens.push({ kind: 'class', negated, ranges })
      i = end
    } else if (c === '{' && seg.indexOf('}', i) >= 0) {
      const end = seg.indexOf('}', i)
      flush()
      tokens.push({ kind: 'text', options: seg.slice(i + 1, end).split(',') })
      i = end
    } else literal += c
  }
  flush()
  return tokens
}

/**
 * A matcher simulating the segment's automaton over the name's code points, all states at once (Thompson's
 * construction): O(name length × pattern length), whatever the name.
 */
function segmentMatcher(seg: string): SegmentMatcher {
  const tokens = tokenize(seg)
  const hiddenOk = seg.startsWith('.')
  const end = tokens.length
  // A state is (token, option, offset in the option's text), packed into one number.
  const W = 2 ** 20
  const O = 2 ** 12
  const pack = (t: number, o: number, k: number): number => (t * O + o) * W + k
  const add = (states: Set<number>, t: number): void => {
    // Epsilon closure: the start of token t.
    for (;;) {
      if (t === end) {
        states.add(-1)
        return
      }
      const tok = tokens[t]!
      if (tok.kind === 'star') {
        states.add(pack(t, 0, 0))
        t++
        continue
      }
      if (tok.kind === 'text') {
        let empty = false
        tok.options.forEach((text, o) => (text === '' ? (empty = true) : states.add(pack(t, o, 0))))
        if (!empty) return
        t++
        continue
      }
      states.add(pack(t, 0, 0))
      return
    }
  }
  const classMatch = (tok: Extract<Token, { kind: 'class' }>, cp: number): boolean => {
    let hit = false
    for (const [a, b] of tok.ranges) if (cp >= a && cp <= b) hit = true
    return hit !== tok.negated
  }
  const start = new Set<number>()
  add(start, 0)
  return {
    test(name: string): boolean {
      if (!hiddenOk && name.startsWith('.')) return false
      let current = new Set(start)
      for (const ch of name) {
        const cp = ch.codePointAt(0)!
        const next = new Set<number>()
        for (const s of current) {
          if (s < 0) continue
          const k = s % W
          const o = Math.floor(s / W) % O
          const t = Math.floor(s / W / O)
          const tok = tokens[t]!
          if (tok.kind === 'star') {
            add(next, t)
          } else if (tok.kind === 'one') {
            add(next, t + 1)
          } else if (tok.kind === 'class') {
            if (classMatch(tok, cp)) add(next, t + 1)
          } else {
            const text = tok.options[o]!
            if (text.startsWith(ch, k)) {
              if (k + ch.length === text.length) add(next, t + 1)
              else next.add(pack(t, o, k + ch.length))
            }
          }
        }
        if (!next.size) return false
        current = next
      }
      return current.has(-1)
    },
  }
}

/** How `listMatches` walks the tree. */
export interface ListOptions {
  /** A folder (relative to the base) left out of the walk: the `after: move:` target. */
  readonly exclude?: string | undefined
  /** Most folders below the glob's literal folder (links included); deeper fails with ANCH_ERR_SFTP_LIMIT. */
  readonly maxDepth?: number
  /** The setting that raises `maxDepth`, named in the error (e.g. `tbls.sales.max_depth`). */
  readonly depthSetting?: string
  /** Told about every link left out: outside the connection folder, or a folder already walked (a loop). */
  readonly onSkip?: (path: string, reason: string) => void
}

/** The default `max_depth`: folders below a glob's literal folder. */
export const DEFAULT_MAX_DEPTH = 64

/**
 * Lists the files matching `pattern` (relative to the base). The literal root folder must exist (else
 * ANCH_ERR_SFTP_PATH); folders that vanish during the walk are skipped. Files come back in (mtime, path) order.
 *
 * Links are followed only while their real path stays inside the connection folder. Each real folder is walked
 * once per pattern position and each real file is taken once (a link loop such as `loop -> .` ends the walk
 * there instead of taking its files again and again); links are followed after the real tree, so a file also
 * reachable without links keeps its own path.
 */
export async function listMatches(fs: RemoteFs, pattern: string, options: ListOptions = {}): Promise<RemoteFile[]> {
  const glob = compileGlob(pattern)
  const maxDepth = options.maxDepth ?? DEFAULT_MAX_DEPTH
  const exclude = options.exclude
  const skip = options.onSkip ?? (() => undefined)
  const out: RemoteFile[] = []
  const join = (dir: string, name: string): string => (dir ? `${dir}/${name}` : name)
  const excluded = (path: string): boolean =>
    exclude !== undefined && (path === exclude || path.startsWith(`${exclude}/`))
  /** `${pattern position} ${real folder}` of every folder walked. */
  const walked = new Set<string>()
  /** Real paths of the files taken. */
  const taken = new Set<string>()
  /** Links met during the walk, followed once the real tree has been walked. */
  const links: (() => Promise<void>)[] = []

  let top: RemoteEntry[]
  let base: string
  let rootReal: string
  try {
    base = await fs.realpath('')
    rootReal = await fs.realpath(glob.root)
    top = await fs.list(glob.root)
  } catch (err) {
    if (isNotFound(err)) {
      throw new SftpError(
        'ANCH_ERR_SFTP_PATH',
        `folder ${JSON.stringify(`/${glob.root}`)} (from path ${JSON.stringify(`/${pattern}`)}) does not exist on the server`,
        { cause: err },
      )
    }
    throw err
  }
  if (!isInside(base, rootReal)) {
    throw new SftpError(
      'ANCH_ERR_SFTP_PATH',
      `folder ${JSON.stringify(`/${glob.root}`)} (from path ${JSON.stringify(`/${pattern}`)}) leads outside the connection folder (through a symbolic link); refused`,
    )
  }

  const listOrSkip = async (dir: string): Promise<RemoteEntry[] | undefined> => {
    try {
      return await fs.list(dir)
    } catch (err) {
      if (isNotFound(err)) return undefined
      throw err
    }
  }
  const take = (path: string, real: string, e: RemoteEntry): void => {
    if (taken.has(real)) return
    taken.add(real)
    out.push({ path, size: e.size, mtime: e.mtime })
  }
  const descend = async (path: string, real: string, i: number, depth: number, viaLink: boolean): Promise<void> => {
    if (walked.has(`${i} ${real}`)) {
      if (viaLink) skip(path, 'a symbolic link to a folder already listed (a loop?); not followed')
      return
    }
    if (depth > maxDepth) {
      throw new SftpError(
        'ANCH_ERR_SFTP_LIMIT',
        `listing /${pattern}: /${path} is more than ${maxDepth} folders below /${glob.root} (max_depth); raise ${options.depthSetting ?? 'max_depth'} if the tree really is that deep`,
      )
    }
    const sub = await listOrSkip(path)
    if (sub) await walk(path, real, i, sub, depth)
  }
  /** Takes or descends into one entry `e` (not a link) matched by segment `i`. */
  const visit = async (
    path: string,
    real: string,
    e: RemoteEntry,
    i: number,
    depth: number,
    viaLink: boolean,
  ): Promise<void> => {
    const last = i === glob.segments.length - 1
    if (glob.segments[i] === '**') {
      if (last && e.type === 'file') take(path, real, e)
      if (e.type === 'dir') await descend(path, real, i, depth + 1, viaLink)
      return
    }
    if (last && e.type === 'file') take(path, real, e)
    else if (!last && e.type === 'dir') await descend(path, real, i + 1, depth + 1, viaLink)
  }
  const follow = async (path: string, i: number, depth: number): Promise<void> => {
    let real: string
    let e: RemoteEntry
    try {
      real = await fs.realpath(path)
    } catch {
      return // a dangling link, or a loop of links the server refuses to resolve
    }
    if (!isInside(base, real)) {
      skip(path, 'a symbolic link leading outside the connection folder; not followed')
      return
    }
    try {
      e = await fs.stat(real === base ? '' : real.slice(base.length + (base.endsWith('/') ? 0 : 1)))
    } catch {
      return
    }
    await visit(path, real, e, i, depth, true)
  }
  const walk = async (
    dir: string,
    dirReal: string,
    i: number,
    entries: RemoteEntry[],
    depth: number,
  ): Promise<void> => {
    const seg = glob.segments[i]
    if (seg === undefined) return
    const key = `${i} ${dirReal}`
    if (walked.has(key)) return
    walked.add(key)
    for (const e of entries) {
      const path = join(dir, e.name)
      if (excluded(path)) continue
      if (seg === '**' ? e.name.startsWith('.') : !seg.test(e.name)) continue
      if (e.type === 'link') links.push(() => follow(path, i, depth))
      else await visit(path, dirReal === '/' ? `/${e.name}` : `${dirReal}/${e.name}`, e, i, depth, false)
    }
    // `**` also matches zero folders: the next segment applies here too.
    if (seg === '**') await walk(dir, dirReal, i + 1, entries, depth)
  }

  await walk(glob.root, rootReal, 0, top, 0)
  for (let k = 0; k < links.length; k++) await links[k]!()
  return out.sort((a, b) => a.mtime - b.mtime || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
}
