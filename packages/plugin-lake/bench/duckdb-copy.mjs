// The baseline: DuckDB's own CSV -> Parquet copy of the same rows, in its own process like the uploader.
import { DuckDBInstance } from '@duckdb/node-api'

const [csv, out] = process.argv.slice(2)
const db = await DuckDBInstance.create(':memory:')
const c = await db.connect()
await c.run(`COPY (SELECT * FROM read_csv('${csv}')) TO '${out}' (FORMAT parquet)`)
c.closeSync()
db.closeSync()
