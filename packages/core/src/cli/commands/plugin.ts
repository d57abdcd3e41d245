import { Command } from 'commander'
import { BUILTIN_PLUGINS, loadPlugin } from '../../plugins/registry.js'

/** `anchovy plugin list`: plugins, their operators and connections. */
export function pluginCommand(): Command {
  const cmd = new Command('plugin').description('inspect plugins')
  cmd.addCommand(
    new Command('list')
      .description('list the known plugins with their operators and connections (others load by package name)')
      .argument('[packages...]', 'more plugin packages to describe')
      .action(async (extra: string[]) => {
        for (const name of [...Object.keys(BUILTIN_PLUGINS), ...extra]) {
          try {
            const p = await loadPlugin(name)
            const ops = Object.keys(p.operators ?? {}).map((o) => `${p.name}.${o}`)
            const cnxns = Object.keys(p.connections ?? {})
            process.stdout.write(
              `${p.name} (${BUILTIN_PLUGINS[name] ?? name})\n  operators: ${ops.join(', ') || '-'}\n  connections: ${cnxns.join(', ') || '-'}\n`,
            )
            if (p.datastores?.length) process.stdout.write(`  datastores: ${p.datastores.length}\n`)
          } catch (err) {
            process.stdout.write(
              `${name} (${BUILTIN_PLUGINS[name] ?? name}): not available: ${(err as Error).message}\n`,
            )
          }
        }
      }),
  )
  return cmd
}
