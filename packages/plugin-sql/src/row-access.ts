/**
 * Reading columns of a row by name. Column names come from data (CSV headers, JSON keys) and config, and a row is a
 * plain object: `row.constructor` of a row without a `constructor` column is `Object`, not a missing value. Every
 * read by a name an `Object.prototype` member also has checks that the row owns the property.
 */

/** Whether `row[name]` on a plain object can find an `Object.prototype` member (`constructor`, `__proto__`, …). */
export function isInheritedName(name: string): boolean {
  return name in Object.prototype
}

/** The row's own value of column `name`; undefined when the row has no such column. */
export function ownValue(row: object, name: string): unknown {
  return Object.hasOwn(row, name) ? (row as Record<string, unknown>)[name] : undefined
}

/**
 * A JavaScript expression reading column `name` of the object named `row` in compiled code (`new Function`). The
 * name is embedded only as a JSON string literal (quotes, backslashes, newlines, `${`, U+2028 and lone surrogates are
 * escaped, so it can never end the literal); `H` must be bound to `Object.hasOwn` where the name is inherited.
 */
export function readExpression(row: string, name: string): string {
  const literal = JSON.stringify(name)
  return isInheritedName(name) ? `(H(${row}, ${literal}) ? ${row}[${literal}] : undefined)` : `${row}[${literal}]`
}
