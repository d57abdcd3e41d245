import * as posix from 'node:path/posix'
import {
  Downloader,
  connection,
  context,
  onTask,
  readConnectionAttributes,
  source,
  type JsonValue,
  type Row,
  type SettingSpec,
  type StreamContext,
} from '@anchovies/core'
import type { Logger } from '@anchovies/core'
import { readTableSettings, TABLE_KEYS, tableKeys, type AfterAction, type CsvTableSettings } from './config.js'
import { isGzip, readRows, type ReadPosition } from './csv-rows.js'
import { SftpError, type BadRowError } from './errors.js'
import { compileGlob, listMatches } from './glob.js'
import { manifestKey, prune, readManifest, selectFiles, type Manifest } from './manifest.js'
import { Quarantine } from './quarantine.js'
import { readResume, resumeKey, resumeValue, type ResumePoint } from './resume.js'
import type { RemoteFile } from './remote-fs.js'
import { SftpConnection } from './sftp-connection.js'

const MAX_LOGGED_BAD_ROWS = 10
/** The manifest (which may be large) is staged for a commit point at most this often. */
const MANIFEST_STAGE_MS = 1000

/**
 * Downloads delimited files (CSV, TSV, …) from an SFTP server or a local folder into the datastore. Each table
 * names a glob (`path`); every new or changed file is streamed, parsed and converted row by row, and a manifest
 * checkpoint (committed with the data) makes sure each file version is taken exactly once. After each parsed
 * chunk it offers the core a commit point, with a resume checkpoint (file version, byte offset and line of the
 * next record): a run stopped mid-file (timeout, SIGTERM, SIGKILL) keeps what was committed, and the next run
 * reads the same file version on from there.
 */
export class CsvDownloader extends Downloader {
  static override settings: readonly SettingSpec[] = [
    {
      key: 'cnxn',
      env: ['ACHVY_CNXN'],
      flags: '--cnxn <id>',
      type: 'string',
      description:
        'sftp: read from the named connection ACHVY_CNXN__<ID>__URI… instead of the default ACHVY_CNXN__URI…',
    },
  ]

  /** The default connection (`ACHVY_CNXN__URI`, …); optional because `--cnxn` may name another one. */
  @connection('', SftpConnection, { optional: true })
  defaultConnection: SftpConnection | undefined

  private named: SftpConnection | undefined

  /** The connection the tables read from. */
  get server(): SftpConnection {
    const c = this.named ?? this.defaultConnection
    if (!c)
      throw new SftpError(
        'ANCH_ERR_SFTP_CONFIG',
        'no sftp connection: set ACHVY_CNXN__URI (and PPK_PATH, HOST_KEY, …) or pass --cnxn <id>',
      )
    return c
  }

  /** Opens the connection at startup, so that a bad URI, key or password fails the run at once. */
  @onTask('startup')
  async openServer(): Promise<void> {
    const ctx = context()
    warnAboutTypos(process.env, ctx.logger)
    this.checkTables(ctx.logger)
    const id = this.runtime.settings.cnxn
    if (typeof id === 'string' && id) {
      if (!/^[A-Za-z0-9_]+$/.test(id))
        throw new SftpError('ANCH_ERR_SFTP_CONFIG', `--cnxn ${JSON.stringify(id)}: use letters, digits and _`)
      const attrs = readConnectionAttributes(process.env, id)
      if (!attrs)
        throw new SftpError(
          'ANCH_ERR_SFTP_CONFIG',
          `connection ${JSON.stringify(id)} is not configured: set ACHVY_CNXN__${id.toUpperCase()}__URI (and __PPK_PATH, __HOST_KEY, …)`,
        )
      this.named = new SftpConnection(attrs)
    }
    await this.server.open(ctx.logger, ctx.signal)
    ctx.logger.info({ connection: this.server.settings.display }, 'sftp: connected')
  }

  /** Validates every configured table at startup (all problems in one error) and warns about unknown keys. */
  private checkTables(log: Logger): void {
    const problems: string[] = []
    const known = new Set<string>(TABLE_KEYS)
    for (const table of this.runtime.configTables) {
      readTableSettings(table, problems)
      const unknown = tableKeys(table.properties).filter((k) => !known.has(k))
      if (unknown.length)
        log.warn(
          { table: table.name, keys: unknown },
          `tbls.${table.name}: keys not read by sftp.CsvDownloader (typo?): ${unknown.join(', ')}`,
        )
    }
    if (problems.length)
      throw new SftpError('ANCH_ERR_SFTP_CONFIG', `invalid table settings:\n  - ${problems.join('\n  - ')}`)
  }

  /** Closes a named connection (the default one is closed by the runtime). */
  @onTask('shutdown')
  async closeServer(): Promise<void> {
    await this.named?.close()
    this.named = undefined
  }

  /** Streams the rows of every new or changed file matching the table's `path`. */
  @source('*')
  async *download(ctx: StreamContext): AsyncGenerator<Row[]> {
    const problems: string[] = []
    const s = readTableSettings(ctx.table, problems)
    if (problems.length)
      throw new SftpError('ANCH_ERR_SFTP_CONFIG', `invalid table settings:\n  - ${problems.join('\n  - ')}`)
    const server = this.server
    const log = ctx.logger
    const data = ctx.task.data
    const checkpoint = context().checkpoint<Manifest>(manifestKey(ctx.table.name))
    const manifest = readManifest(checkpoint.get())
    const resumeCheckpoint = context().checkpoint<JsonValue>(resumeKey(ctx.table.name))
    let resume = readResume(resumeCheckpoint.get(), ctx.table.name)
    const exclude = s.after.kind === 'move' ? s.after.dir : undefined
    const skipped = new Map<string, string>()
    const listing = await server.withRetry(
      `listing /${s.path}`,
      (fs) =>
        listMatches(fs, s.path, {
          exclude,
          maxDepth: s.maxDepth,
          depthSetting: `tbls.${ctx.table.name}.max_depth`,
          onSkip: (path, reason) => void skipped.set(path, reason),
        }),
      ctx.signal,
    )
    for (const [path, reason] of skipped) log.warn({ path, reason }, `sftp: /${path} is ${reason}`)
    const selection = selectFiles(listing, manifest, Date.now(), s.minAge, s.maxFiles)
    if (resume) resume = this.checkResume(resume, listing, s, log, () => resumeCheckpoint.delete())
    let deferred = selection.deferred
    if (resume) {
      // The partly read file goes first: reading another one would stage (and commit) that one's resume point in
      // place of its own, and the rows committed from it would then be read again.
      const path = resume.path
      const at = selection.take.findIndex((f) => f.path === path)
      const file = at >= 0 ? selection.take.splice(at, 1)[0] : listing.find((f) => f.path === path)
      if (file) selection.take.unshift(file)
      // Not taken: it was deferred by max_files (or is younger than a raised min_age).
      if (at < 0 && file && !selection.young.includes(file)) deferred--
      if (at < 0 && s.maxFiles > 0 && selection.take.length > s.maxFiles) {
        selection.take.pop()
        deferred++
      }
    }
    Object.assign(data, {
      files_listed: listing.length,
      files_taken: 0,
      files_unchanged: selection.unchanged,
      files_young: selection.young.length,
    })
    if (deferred) data.files_deferred = deferred
    if (selection.young.length) {
      log.info(
        { files: selection.young.slice(0, 10).map((f) => f.path), count: selection.young.length, min_age: s.minAge },
        'sftp: files younger than min_age are left for a later run',
      )
    }
    const next = prune(manifest, listing)
    if (Object.keys(next).length !== Object.keys(manifest).length) checkpoint.set(next)

    // Commit points: the manifest staged must always include every file whose rows were yielded in full.
    let manifestDirty = false
    let manifestStagedAt = 0
    const margin = ctx.deadline === undefined ? 0 : Math.min(30_000, Math.max(2000, ctx.timeLeft() * 0.2))
    let deadlineCommitted = false
    let resumeStaged = false
    /** Offers the core a clean point: the rows yielded so far belong with the checkpoints staged so far. */
    const offerCommit = async (): Promise<void> => {
      // Bad rows are quarantined into one file made visible at the table's end: commit only then once there are any.
      if (quarantine && quarantine.count > 0) return
      const nearDeadline = !deadlineCommitted && ctx.deadline !== undefined && ctx.timeLeft() < margin
      if (manifestDirty) {
        if (!nearDeadline && Date.now() - manifestStagedAt < MANIFEST_STAGE_MS) return
        checkpoint.set(next)
        manifestDirty = false
        manifestStagedAt = Date.now()
      }
      if (nearDeadline) {
        deadlineCommitted = true
        log.info(
          { time_left_ms: ctx.timeLeft() },
          'sftp: the execution timeout is near; committing what was read so far',
        )
        await ctx.commit()
      } else await ctx.commitPoint()
    }

    const quarantine =
      s.onBadRow === 'quarantine'
        ? new Quarantine(
            this.runtime.datastore,
            `${this.runtime.user}/${this.runtime.anchovyId}`,
            ctx.table.name,
            this.runtime.uniqueFileTag(),
          )
        : undefined
    let badRows = 0
    const onBad = (bad: BadRowError): void => {
      if (s.onBadRow === 'fail') throw bad
      badRows++
      data.bad_rows = badRows
      if (s.maxBadRows > 0 && badRows > s.maxBadRows) {
        throw new SftpError(
          'ANCH_ERR_CSV_PARSE',
          `more than max_bad_rows (${s.maxBadRows}) bad rows; the last: ${bad.message}`,
          { cause: bad },
        )
      }
      quarantine?.write(bad)
      if (badRows <= MAX_LOGGED_BAD_ROWS)
        log.warn(
          { file: bad.file, line: bad.line, column: bad.column, reason: bad.reason, policy: s.onBadRow },
          'sftp: bad row',
        )
    }
    let completed = false
    try {
      for (const file of selection.take) {
        const started = Date.now()
        const from = resume?.path === file.path ? resume : undefined
        // A gzip file cannot be entered in the middle, so it commits whole (no commit point inside it): a run stopped
        // in it reads it again from the start, and nothing of it was committed. (Its decompression guard also sees
        // the whole file before any of its rows are kept.) A resume point for one is honoured by dropping the bytes
        // before it.
        const gz = isGzip(file, s)
        const start = from && !gz ? from.offset : 0
        if (from) {
          data.files_resumed = ((data.files_resumed as number | undefined) ?? 0) + 1
          if (gz)
            log.info(
              { file: file.path, line: from.line, skip_bytes: from.offset },
              `sftp: resuming /${file.path} at line ${from.line}: a gzip file cannot seek, so it is read again from the start and its first ${from.offset} decompressed bytes (committed before) are dropped`,
            )
          else
            log.info(
              { file: file.path, offset: from.offset, line: from.line, size: file.size },
              `sftp: resuming /${file.path} at byte ${from.offset} of ${file.size} (line ${from.line}), where the last commit left it`,
            )
        }
        let rows = from?.rows ?? 0
        const progress: { position: ReadPosition | undefined } = { position: undefined }
        for await (const batch of readRows(server.read(file, ctx.signal, start), file, s, onBad, {
          resume: from,
          progress,
        })) {
          rows += batch.length
          // One array per parsed block: the core passes it on as one chunk (much faster than row by row).
          yield batch
          if (quarantine) await quarantine.drained()
          if (progress.position && !gz) {
            resumeCheckpoint.set(resumeValue(file, progress.position, rows))
            resumeStaged = true
            await offerCommit()
          }
        }
        next[file.path] = { size: file.size, mtime: file.mtime, rows, taken_at: new Date().toISOString() }
        manifestDirty = true
        if (resumeStaged || from) resumeCheckpoint.delete()
        resumeStaged = false
        data.files_taken = (data.files_taken as number) + 1
        data.bytes_read = ((data.bytes_read as number | undefined) ?? 0) + file.size - start
        log.info(
          {
            file: file.path,
            bytes: file.size,
            bytes_read: file.size - start,
            rows,
            ms: Date.now() - started,
            ...(from ? { resumed_at: from.offset } : {}),
          },
          'sftp: file taken',
        )
        if (s.after.kind !== 'keep') {
          const after = s.after
          context().afterCommit(() => this.applyAfter(server, file, after, s, log))
        }
        await offerCommit()
      }
      if (manifestDirty) checkpoint.set(next)
      if (quarantine) {
        const path = await quarantine.finish()
        if (path) Object.assign(data, { quarantined: quarantine.count, quarantine: path })
      }
      if (badRows > MAX_LOGGED_BAD_ROWS)
        log.warn({ bad_rows: badRows, policy: s.onBadRow }, 'sftp: more bad rows were not logged one by one')
      completed = true
    } finally {
      // Failed, aborted, or stopped by a failing sink: its rows are not committed, so neither are its bad rows.
      if (!completed) quarantine?.discard()
    }
  }

  /**
   * The resume point if its file version is still listed; otherwise it is dropped (`drop`), saying why: a file
   * that changed is read again from the start, as a new version.
   */
  private checkResume(
    resume: ResumePoint,
    listing: readonly RemoteFile[],
    s: CsvTableSettings,
    log: Logger,
    drop: () => void,
  ): ResumePoint | undefined {
    const listed = listing.find((f) => f.path === resume.path)
    if (!listed) {
      log.info(
        { file: resume.path },
        `sftp: /${resume.path}, partly read before, is no longer listed; its resume point is dropped`,
      )
      drop()
      return undefined
    }
    if (listed.size !== resume.size || listed.mtime !== resume.mtime) {
      log.warn(
        {
          file: resume.path,
          was: { size: resume.size, mtime: resume.mtime },
          now: { size: listed.size, mtime: listed.mtime },
          committed_rows: resume.rows,
        },
        `sftp: /${resume.path} changed since it was partly read (size or mtime differs): reading it again from the start, as a new version (the ${resume.rows} rows committed from the earlier version stay)`,
      )
      drop()
      return undefined
    }
    if (!isGzip(listed, s) && resume.offset > listed.size) {
      throw new SftpError(
        'ANCH_ERR_SFTP_RESUME',
        `checkpoint ${resumeKey(s.table)}: offset ${resume.offset} is past the end of /${resume.path} (${listed.size} bytes); inspect or delete the checkpoint`,
      )
    }
    return resume
  }

  /** `after: delete|move:<dir>`, run once the batch holding the file's rows has committed. */
  private async applyAfter(
    server: SftpConnection,
    file: RemoteFile,
    after: AfterAction,
    s: CsvTableSettings,
    log: Logger,
  ): Promise<void> {
    if (after.kind === 'delete') {
      await server.withRetry(`deleting /${file.path}`, (fs) => fs.delete(file.path))
      log.info({ file: file.path }, 'sftp: file deleted after commit')
      return
    }
    if (after.kind !== 'move') return
    const root = compileGlob(s.path).root
    const relative = root && file.path.startsWith(`${root}/`) ? file.path.slice(root.length + 1) : file.path
    let target = posix.join(after.dir, relative)
    await server.withRetry(`moving /${file.path}`, async (fs) => {
      await fs.mkdirp(posix.dirname(target))
      const exists = await fs.stat(target).then(
        () => true,
        () => false,
      )
      if (exists) target = `${target}.${new Date().toISOString().replace(/[-:.]/g, '')}`
      await fs.rename(file.path, target)
    })
    log.info({ file: file.path, to: target }, 'sftp: file moved after commit')
  }
}

/** Warns about connection variables with the README's misspelt prefixes, which are ignored. */
function warnAboutTypos(env: NodeJS.ProcessEnv, log: Logger): void {
  for (const name of Object.keys(env)) {
    const m = /^(ANCHY|ACHY|ANCHVY)_CNXN__(.+)$/i.exec(name)
    if (m)
      log.warn(
        { variable: name, did_you_mean: `ACHVY_CNXN__${m[2]}` },
        `${name} is ignored: the prefix is ACHVY_ (did you mean ACHVY_CNXN__${m[2]}?)`,
      )
  }
}
