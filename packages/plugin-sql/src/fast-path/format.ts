/**
 * The bulk format a member is converted to. `postgres`: COPY text, each row led by a 16-digit `_seq` placeholder.
 * `mysql`: `LOAD DATA` text, each row led by a 16-digit `_anch_ord` and a 10-digit `_anch_file` placeholder.
 * `sqlite`: `[[v, …], …]`, values as JSON that SQLite's `->>` turns into what the general path binds.
 */
export type FastFormat = 'postgres' | 'mysql' | 'sqlite'

/** Width of the `_seq` (MySQL: `_anch_ord`) placeholder: bigint input accepts leading zeros. */
export const SEQ_WIDTH = 16
/** Width of MySQL's `_anch_file` placeholder, after the `_anch_ord` one and a tab. */
export const FILE_WIDTH = 10

/** Writes `v` (not negative) right-aligned into the zero-filled placeholder ending before `end`. */
export function fillDigits(buf: Buffer, end: number, v: number): void {
  let p = end
  do {
    const q = Math.floor(v / 10)
    buf[--p] = 48 + (v - q * 10)
    v = q
  } while (v > 0)
}
