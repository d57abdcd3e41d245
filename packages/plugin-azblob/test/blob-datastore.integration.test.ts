import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll } from 'vitest'
import { describeDatastoreContract } from '../../core/test/datastore/datastore-contract.js'
import { BlobDatastore } from '../src/blob-datastore.js'
import { Azurite } from './azurite.js'

let azurite: Azurite
beforeAll(async () => {
  azurite = await Azurite.start()
})
afterAll(async () => {
  await azurite?.dispose()
})

describeDatastoreContract(
  'BlobDatastore (Azurite)',
  async () => {
    // a nested prefix, so every path the contract checks must come back relative to it
    const url = azurite.url('contract', `school/${randomBytes(4).toString('hex')}/root`)
    const env = {}
    return {
      datastore: await BlobDatastore.open(url, { env }),
      second: () => BlobDatastore.open(url, { env }),
      cleanup: async () => undefined,
    }
  },
  // Azure leases last at least 15 s: a lock with a 3 s TTL is free 15 s after its last renewal.
  { lockTtlMs: 3000, lockExpiryMs: 15_000 },
)
