// The CLI's expected failures. Each carries its exit code; the program prints
// the message alone (no stack) and exits with that code.

import { VipmeshError } from "@vipmesh/core";

/** The command line itself is wrong: exit 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
  readonly exitCode = 2;
}

/** The command ran and failed (the manager said no, a wait timed out, ...): exit 1. */
export class CommandFailed extends Error {
  override readonly name = "CommandFailed";
  readonly exitCode = 1;
}

/** A command run for the user (exec) ended with this status: vipmesh exits with it, saying nothing more. */
export class ChildExit extends Error {
  override readonly name = "ChildExit";
  constructor(readonly exitCode: number) {
    super(`exit status ${exitCode}`);
  }
}

/** Failures were already reported one by one (e.g. `rm a b` where b is missing): exit 1 silently. */
export class AlreadyReported extends Error {
  override readonly name = "AlreadyReported";
  readonly exitCode = 1;
}

/** An error this program expects and explains in one line, or undefined for a bug. */
export function expectedErrorMessage(err: unknown): string | undefined {
  const expected = err instanceof UsageError || err instanceof CommandFailed || err instanceof VipmeshError;
  return expected ? err.message : undefined;
}

/**
 * Runs `fn` for each target like `docker rm a b c`: a target that fails is
 * reported and the rest still run; the command then exits 1.
 */
export async function forEachTarget<T>(
  targets: readonly T[],
  report: (text: string) => void,
  fn: (target: T) => Promise<void>,
): Promise<void> {
  let failed = false;
  for (const target of targets) {
    try {
      await fn(target);
    } catch (err) {
      const message = expectedErrorMessage(err);
      if (message === undefined) throw err;
      report(`Error: ${message}\n`);
      failed = true;
    }
  }
  if (failed) throw new AlreadyReported();
}
