import * as path from 'node:path'
import { fileURLToPath } from 'node:url'
import { AnchoviesError } from './errors.js'

/** The global slot where the first copy of @anchovies/core loaded in this process records its package folder. */
const SLOT = Symbol.for('anchovies.core.package')

/**
 * Records this copy of @anchovies/core in the process, and throws `ANCH_ERR_CORE_COPIES` when another copy from a
 * different folder got there first: two copies mean two `AnchoviesError` classes, two decorator registries and two
 * run contexts, so operators from one would silently not see the other's. `src/` and `dist/` of one package count
 * as one copy.
 */
export function registerCoreCopy(packageDir: string): void {
  const holder = globalThis as { [SLOT]?: string }
  const first = holder[SLOT]
  if (first === undefined) {
    holder[SLOT] = packageDir
    return
  }
  if (first === packageDir) return
  throw new AnchoviesError(
    'ANCH_ERR_CORE_COPIES',
    `two copies of @anchovies/core are loaded: ${first} and ${packageDir}. ` +
      'Install exactly one: plugins take @anchovies/core as a peer dependency, so align the versions they ask for ' +
      'and run `npm dedupe` (`npm ls @anchovies/core` shows who brought the second copy).',
  )
}

registerCoreCopy(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..'))
