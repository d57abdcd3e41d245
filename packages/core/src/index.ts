import 'reflect-metadata'
import './core-copies.js'

export { source, sink, onTask, connection } from './decorators/index.js'
export type { ConnectionOptions } from './decorators/index.js'
export { Operator } from './operators/operator.js'
export type { StreamContext, OperatorRuntime, UpstreamFile, Rows } from './operators/operator.js'
export { Downloader } from './operators/downloader.js'
export { Uploader, positionKey } from './operators/uploader.js'
export type { UpstreamPosition } from './operators/uploader.js'
export { context, session, batch } from './context/context.js'
export type { Context, SessionInfo, BatchInfo, TaskInfo, Checkpoint } from './context/context.js'
export { Connection, maskAttributes, readConnectionAttributes } from './connections/connection.js'
export type { ConnectionAttributes } from './connections/connection.js'
export { definePlugin, isPlugin } from './plugins/define-plugin.js'
export type { Plugin, PluginDefinition, PluginErrorDoc } from './plugins/define-plugin.js'
export {
  AnchoviesError,
  AnchovyExecutionTimeout,
  AnchovyLocked,
  isAnchoviesError,
  ERROR_CODES,
  EXIT,
} from './errors.js'
export type { ErrorCode } from './errors.js'
export { DateTime, LocalDate, formatDate } from './values.js'
export { registerSecret, redact, isSecretAttribute } from './logging/secrets.js'
export { createLogger } from './logging/logger.js'
export type { Logger } from 'pino'
export { validateName } from './names.js'
export { bareTable, parseTable, qualifiedName, tableRecord } from './tables.js'
export { FilesystemDatastore, isStale } from './datastore/filesystem-datastore.js'
export { lockOwner } from './datastore/datastore.js'
export type {
  Datastore,
  DatastoreEntry,
  DatastoreFactory,
  DatastoreLock,
  LockInfo,
  LockOwner,
  WriteOptions,
} from './datastore/datastore.js'
export { openDatastore, registerDatastore } from './datastore/open.js'
export { CommitLog } from './datastore/commit-log.js'
/** For readers that split data files into their gzip members themselves (plugin-sql's byte fast path). */
export { memberLength } from './datastore/gzip-members.js'
export { AnchovyState, readCheckpoints } from './datastore/anchovy-state.js'
export type { CommitSummary, StateStores } from './datastore/anchovy-state.js'
export { checkpointHistory, changeAt } from './datastore/checkpoint-history.js'
export type { CheckpointChange } from './datastore/checkpoint-history.js'
export type { Stage } from './datastore/stage.js'
export type { CommitRecord, CommittedFile } from './datastore/commit-log.js'
export {
  CheckpointStore,
  TableStore,
  TaskStore,
  HiveTaskStore,
  DataBuffer,
  encodeCheckpoint,
  decodeCheckpoint,
} from './datastore/stores.js'
export type { StoreContext, TaskRecord, TableWriter } from './datastore/stores.js'
export { encodeRow, decodeRow, readDataFile, readDataFileChunks, DataFileWriter } from './datastore/data-file.js'
export { chunksOf, isRowStream, rowStream } from './execution/row-stream.js'
export type { RowStream } from './execution/row-stream.js'
export type { WrittenFile } from './datastore/data-file.js'
export { startAnchovy, prepareRun } from './execution/start.js'
export type { StartOptions, OperatorGiven, Prepared } from './execution/start.js'
export type { ConfigSources } from './config/load-config.js'
export type { RunResult } from './execution/runtime.js'
export { CORE_SETTINGS } from './config/settings.js'
export type { SettingSpec } from './config/settings.js'
export type { Settings } from './config/load-config.js'
export { TASK_PHASES, COLUMN_TYPES } from './types.js'
export type { Row, Table, TaskPhase, TaskType, ColumnType, SortKey, JsonValue } from './types.js'
