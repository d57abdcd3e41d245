import { afterAll, beforeAll, describe, it } from 'vitest'
import { randomBytes } from 'node:crypto'
import { Azurite } from '../../packages/plugin-azblob/test/azurite.js'
import { chaosSize, crashAnywhere } from './crash-anywhere.js'

// A SIGKILLed run's blob lease outlives it (15 s at the shortest): runs in that window exit 75, which the loop accepts.
const size = chaosSize('azurite', 30)
let azurite: Azurite | undefined

beforeAll(async () => {
  azurite = await Azurite.start()
})
afterAll(async () => {
  await azurite?.dispose()
})

describe('crash anywhere, datastore on Azure Blob Storage (Azurite)', () => {
  it(
    `converges to the latest source rows after ${size.iterations} iterations of random SIGKILL/SIGTERM`,
    async () => {
      const location = azurite!.url('chaos', `run-${randomBytes(3).toString('hex')}`)
      // --lock-ttl 15: the shortest lease, so that a killed holder's lock expires as soon as Azure allows
      await crashAnywhere({ name: 'azurite', location, flags: ['--lock-ttl', '15'], leaseOutlivesHolder: true }, size)
    },
    120_000 + size.iterations * 30_000,
  )
})
