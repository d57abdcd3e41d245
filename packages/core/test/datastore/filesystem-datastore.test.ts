import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { FilesystemDatastore } from '../../src/index.js'
import { describeDatastoreContract } from './datastore-contract.js'

describeDatastoreContract(
  'FilesystemDatastore',
  async () => {
    const dir = await mkdtemp(join(tmpdir(), 'anchovies-fs-contract-'))
    return {
      datastore: new FilesystemDatastore(dir),
      second: async () => new FilesystemDatastore(dir),
      cleanup: () => rm(dir, { recursive: true, force: true }),
    }
  },
  { lockTtlMs: 1000, lockExpiryMs: 1000 },
)
