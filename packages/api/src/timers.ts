// setTimeout takes at most 2^31−1 ms (24.8 days): past that Node warns and
// fires after 1 ms. Certificates renew after weeks and keys rotate when an
// operator says, so their timers wait in steps.

const MAX_TIMEOUT_MS = 2 ** 31 - 1;

export interface Timer {
  clear(): void;
}

/** Calls `fn` at `due` (ms since the epoch; at once when past), however far off. Unref'd: it keeps no process alive. */
export function timerAt(due: number, fn: () => void): Timer {
  let handle: NodeJS.Timeout;
  const arm = () => {
    const left = due - Date.now();
    handle = setTimeout(left > MAX_TIMEOUT_MS ? arm : fn, Math.max(0, Math.min(left, MAX_TIMEOUT_MS)));
    handle.unref();
  };
  arm();
  return { clear: () => clearTimeout(handle) };
}

/**
 * Polls `check` every `intervalMs` until it returns a truthy value, and returns that; after
 * `timeoutMs` fails naming `what` and the last error `check` threw. For tests and the lab.
 */
export async function waitFor<T>(
  what: string,
  check: () => T | Promise<T>,
  timeoutMs = 10_000,
  intervalMs = 10,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
