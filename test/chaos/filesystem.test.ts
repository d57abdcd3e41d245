import { existsSync } from 'node:fs'
import * as path from 'node:path'
import { describe, it } from 'vitest'
import { chaosSize, crashAnywhere } from './crash-anywhere.js'
import { tempDir } from './harness.js'

const size = chaosSize('filesystem', 30)

describe('crash anywhere, datastore on the filesystem', () => {
  it(
    `converges to the latest source rows after ${size.iterations} iterations of random SIGKILL/SIGTERM`,
    async () => {
      const ds = tempDir('anch-chaos-ds-')
      try {
        await crashAnywhere(
          {
            name: 'filesystem',
            location: ds.dir,
            // a short TTL bounds how long a takeover marker stranded by a SIGKILL blocks the lock
            flags: ['--lock-ttl', '10'],
            leaseOutlivesHolder: false,
            strandedTakeover: (home) => existsSync(path.join(ds.dir, home, '$lock.takeover')),
          },
          size,
        )
      } finally {
        ds.remove()
      }
    },
    60_000 + size.iterations * 20_000,
  )
})
