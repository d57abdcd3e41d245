export { AnchovyState, CheckpointStore, DataBuffer, FilesystemDatastore, TableStore } from '../../src/index.js'
export type { Datastore, StoreContext } from '../../src/index.js'
export { bareTable } from '../../src/tables.js'
