import { existsSync, writeFileSync } from 'node:fs'
import { Command } from 'commander'
import { AnchoviesError } from '../../errors.js'

const STARTER = `# anchovies configuration (see config.example.yaml in the anchovies repository for every setting)
config:
  # id: sales_sftp          # the anchovy id (or --id / ACHVY_ID)
  # execution_timeout: 600  # seconds per batch (or -t / ACHVY_EXECUTION_TIMEOUT)
tbls:
  sales:
    # plugin settings (sftp.CsvDownloader)
    path: /sales/*.csv
    delimiter: ","
    # general settings, used by uploaders
    unique_by: order_num, line_num
    sort_by: -updated_at
`

/** `anchovy init`: writes a starter config.yaml into the current folder. */
export function initCommand(): Command {
  return new Command('init')
    .description('write a starter config.yaml into the current folder')
    .option('--force', 'overwrite an existing config.yaml')
    .action((opts: { force?: boolean }) => {
      if (existsSync('config.yaml') && !opts.force) {
        throw new AnchoviesError('ANCH_ERR_USAGE', 'config.yaml exists already (use --force to overwrite)')
      }
      writeFileSync('config.yaml', STARTER)
      process.stdout.write('wrote config.yaml\n')
    })
}
