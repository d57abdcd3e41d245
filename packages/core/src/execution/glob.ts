/** Converts a table glob (`*`, `?`, `[abc]`) to an anchored RegExp. */
export function globToRegExp(pattern: string): RegExp {
  let re = ''
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!
    if (c === '*') re += '.*'
    else if (c === '?') re += '.'
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 1)
      if (end < 0) re += '\\['
      else {
        const body = pattern
          .slice(i + 1, end)
          .replace(/^!/, '^')
          .replace(/\\/g, '\\\\')
        re += `[${body}]`
        i = end
      }
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&')
  }
  return new RegExp(`^${re}$`)
}

/** True when `name` matches the glob. */
export function globMatch(pattern: string, name: string): boolean {
  return pattern === name || globToRegExp(pattern).test(name)
}

/** True when the pattern has glob characters. */
export function isGlob(pattern: string): boolean {
  return /[*?[]/.test(pattern)
}
