/** What ends a CLI run from outside: a signal, or an event loop with nothing left to do. */
export interface StopHandlers {
  /** SIGTERM or SIGINT arrived. */
  signal(sig: NodeJS.Signals): void
  /**
   * The event loop emptied while the run still waits: user code awaits a promise that can never settle, and node
   * would exit 13 with no results and the lock held.
   */
  stalled(): void
}

/** Listens for SIGTERM, SIGINT and a stalled event loop until the returned function is called. */
export function listenForStop(handlers: StopHandlers): () => void {
  const onSignal = (sig: NodeJS.Signals): void => handlers.signal(sig)
  const onStall = (): void => handlers.stalled()
  process.on('SIGTERM', onSignal)
  process.on('SIGINT', onSignal)
  process.on('beforeExit', onStall)
  return () => {
    process.off('SIGTERM', onSignal)
    process.off('SIGINT', onSignal)
    process.off('beforeExit', onStall)
  }
}
