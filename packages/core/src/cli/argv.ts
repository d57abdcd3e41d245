let cliArgv: readonly string[] | undefined

/** Called by the CLI entry point: the arguments a supervisor gives the child it runs the same command in. */
export function setCliArgv(argv: readonly string[]): void {
  cliArgv = [...argv]
}

/** The CLI's arguments, or undefined when anchovies runs inside another program (no supervision then). */
export function getCliArgv(): readonly string[] | undefined {
  return cliArgv
}
