import { expect } from 'vitest'
import { startSshd, type Sshd } from '../../packages/plugin-sftp/test/helpers/sshd.js'
import {
  checkPipeline,
  createDatabase,
  killAll,
  outcomeText,
  spawnAnchovy,
  tempDir,
  writeConfig,
  type Outcome,
  type PgDatabase,
  type Running,
} from '../chaos/harness.js'
import { ChangingSource, downloaderConfig, rng } from '../chaos/source.js'

export const USER = 'fault'
export const DOWNLOADER = 'fault_dl'
export const UPLOADER = 'fault_up'

/** sshd → sftp.CsvDownloader → datastore → sql.Uploader → PostgreSQL, with handles to break each part. */
export class Pipeline {
  readonly random: () => number
  readonly source: ChangingSource
  private readonly config: string
  private readonly work = tempDir('anch-fault-')
  readonly log: string[] = []

  private constructor(
    readonly sshd: Sshd,
    readonly db: PgDatabase,
    /** `--datastore` */
    readonly datastore: string,
    seed: number,
  ) {
    this.random = rng(seed)
    this.source = new ChangingSource(sshd.root, this.random)
    this.config = writeConfig(this.work.dir, downloaderConfig())
  }

  /** Starts sshd and creates a database (on `pgPort`, the shared server by default). */
  static async start(opts: { datastore: string; seed?: number; pgPort?: number }): Promise<Pipeline> {
    const sshd = await startSshd()
    try {
      const db = await createDatabase('fault', opts.pgPort)
      return new Pipeline(sshd, db, opts.datastore, opts.seed ?? 1)
    } catch (err) {
      await sshd.stop()
      throw err
    }
  }

  /** The environment of every run. */
  env(extra: Record<string, string> = {}): Record<string, string> {
    return {
      ACHVY_USER: USER,
      ACHVY_DATASTORE: this.datastore,
      ACHVY_CNXN__URI: this.sshd.uri(),
      ACHVY_CNXN__HOST_KEY: this.sshd.hostFingerprint,
      ACHVY_CNXN__RETRY_DELAY: '0.2',
      ACHVY_CNXN__DB__URL: this.db.url,
      ...extra,
    }
  }

  /** Starts the downloader. */
  downloader(opts: { env?: Record<string, string>; wrapper?: string[]; args?: string[] } = {}): Running {
    return spawnAnchovy(
      ['start', '-op', 'sftp.CsvDownloader', '--id', DOWNLOADER, '--config-file', this.config, ...(opts.args ?? [])],
      this.env(opts.env),
      this.work.dir,
      opts.wrapper,
    )
  }

  /** Starts the uploader. */
  uploader(opts: { env?: Record<string, string>; wrapper?: string[]; args?: string[] } = {}): Running {
    return spawnAnchovy(
      ['start', '-op', 'sql.Uploader', '--id', UPLOADER, '-U', DOWNLOADER, ...(opts.args ?? [])],
      this.env(opts.env),
      this.work.dir,
      opts.wrapper,
    )
  }

  /** Waits for a run and records it in the log. */
  async outcome(what: string, r: Running): Promise<Outcome> {
    const o = await r.done
    this.log.push(`${what}: ${outcomeText(o)}`)
    return o
  }

  /** Runs a clean downloader then uploader, both of which must succeed. */
  async cleanRound(): Promise<void> {
    const d = await this.outcome('clean downloader', this.downloader())
    expect(d.code, d.stderr).toBe(0)
    const u = await this.outcome('clean uploader', this.uploader())
    expect(u.code, u.stderr).toBe(0)
  }

  /** Two clean rounds, then the target must hold exactly the latest source rows, each upstream row loaded once. */
  async expectConverged(): Promise<void> {
    await this.cleanRound()
    await this.cleanRound()
    const problems = await checkPipeline({
      source: this.source,
      db: this.db,
      datastore: this.datastore,
      user: USER,
      downloader: DOWNLOADER,
      uploader: UPLOADER,
    })
    expect(problems, this.log.join('\n')).toEqual([])
  }

  async stop(): Promise<void> {
    killAll()
    await this.sshd.stop().catch(() => undefined)
    await this.db.drop().catch(() => undefined)
    this.work.remove()
  }
}

/** Waits until `check` holds, polling every 20 ms, at most `ms`. */
export async function until(check: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}
