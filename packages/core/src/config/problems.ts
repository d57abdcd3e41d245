import { AnchoviesError, type ErrorCode } from '../errors.js'

/** Throws one configuration error listing every problem. */
export function throwProblems(problems: string[]): void {
  if (problems.length) {
    // Problems of one kind keep their own code (a bad name, a plugin that does not load); a mix is ANCH_ERR_CONFIG.
    const codes = new Set(problems.map((p) => problemCodes.get(problems)?.get(p) ?? 'ANCH_ERR_CONFIG'))
    const code = codes.size === 1 ? [...codes][0]! : 'ANCH_ERR_CONFIG'
    throw new AnchoviesError(code, `invalid configuration:\n  - ${problems.join('\n  - ')}`)
  }
}

const problemCodes = new WeakMap<string[], Map<string, ErrorCode>>()

/** Adds a problem with its own error code (the error `throwProblems` raises keeps it when all problems share it). */
export function addProblem(problems: string[], message: string, code: ErrorCode): void {
  problems.push(message)
  let codes = problemCodes.get(problems)
  if (!codes) problemCodes.set(problems, (codes = new Map()))
  codes.set(message, code)
}
