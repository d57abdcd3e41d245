import { readFile } from 'node:fs/promises'
import { isSecretAttribute, registerSecret } from '@anchovies/core'
import { SingerError } from './errors.js'

const isObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v)

/** Registers every secret-looking value of a tap or target config file, so its stderr and errors mask them. */
export function registerConfigSecrets(config: unknown): void {
  const walk = (v: unknown, key: string, depth: number): void => {
    if (depth > 50) return
    if ((typeof v === 'string' || typeof v === 'number') && isSecretAttribute(key) && String(v).length >= 4)
      registerSecret(String(v))
    else if (Array.isArray(v)) for (const x of v) walk(x, key, depth + 1)
    else if (isObject(v)) for (const [k, x] of Object.entries(v)) walk(x, k, depth + 1)
  }
  walk(config, '', 0)
}

/** Reads a JSON file named by a connection attribute; a missing or malformed one is a clear config error. */
export async function readJsonAttribute(path: string, attr: string): Promise<unknown> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    throw new SingerError(
      'ANCH_ERR_SINGER_CONFIG',
      `${attr}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
      { cause: err },
    )
  }
  try {
    return JSON.parse(text)
  } catch (err) {
    throw new SingerError('ANCH_ERR_SINGER_CONFIG', `${attr}: ${path} is not JSON (${(err as Error).message})`, {
      cause: err,
    })
  }
}
