import { AnchoviesError, Connection, openDatastore, type Datastore } from '@anchovies/core'

/**
 * Where the lake lives (`ACHVY_CNXN__LAKE__URL`): anything the core opens as a datastore, a local folder or
 * `az://container/prefix` (through plugin-azblob, with its credential rules).
 */
export class LakeConnection extends Connection {
  static override requiredAttributes: readonly string[] = ['url']
  private store: Datastore | undefined

  /** The opened lake (after `connect`). */
  get datastore(): Datastore {
    if (!this.store) throw new AnchoviesError('ANCH_ERR_CONNECTION', 'the lake connection is not open yet')
    return this.store
  }

  override async connect(): Promise<void> {
    const url = this.attrs.url
    if (typeof url !== 'string' || url.trim() === '') {
      throw new AnchoviesError(
        'ANCH_ERR_CONNECTION_MISSING',
        'the lake location is empty: set ACHVY_CNXN__LAKE__URL to a folder or az://<container>/<prefix>',
      )
    }
    this.store = await openDatastore(url.trim())
  }

  override async check(): Promise<void> {
    await this.datastore.list('_anchovies-check')
  }

  override async close(): Promise<void> {
    await this.store?.close()
    this.store = undefined
  }
}
