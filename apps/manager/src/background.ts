// Writes nobody waits for (a node marked ready, tasks marked drained): a
// failure is logged, never an unhandled rejection; the next event retries.

export function inBackground(what: string, write: Promise<unknown>): void {
  write.catch((err: unknown) => console.error(`manager: ${what}: ${err instanceof Error ? err.message : String(err)}`));
}
