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
  override readonly name: string = "CommandFailed";
  readonly exitCode: number = 1;
}

/** A change was asked for and no answer came: it may or may not have been made. Exit 3. */
export class OutcomeUnknown extends CommandFailed {
  override readonly name = "OutcomeUnknown";
  override readonly exitCode = 3;
}

/** A command run for the user (exec) ended with this status: vipmesh exits with it, saying nothing more. */
export class ChildExit extends Error {
  override readonly name = "ChildExit";
  constructor(readonly exitCode: number) {
    super(`exit status ${exitCode}`);
  }
}

/** Failures were already reported one by one (e.g. `rm a b` where b is missing): exit 1 (or 3) silently. */
export class AlreadyReported extends Error {
  override readonly name = "AlreadyReported";
  constructor(readonly exitCode = 1) {
    super("already reported");
  }
}

/** An error this program expects and explains in one line, or undefined for a bug. */
export function expectedErrorMessage(err: unknown): string | undefined {
  const expected = err instanceof UsageError || err instanceof CommandFailed || err instanceof VipmeshError;
  return expected ? err.message : undefined;
}

/**
 * Runs `fn` for each target like `docker rm a b c`: a target that fails is
 * reported and the rest still run; the command then exits 1, or 3 when
 * the only trouble was changes left unanswered.
 */
export async function forEachTarget<T>(
  targets: readonly T[],
  report: (text: string) => void,
  fn: (target: T) => Promise<void>,
): Promise<void> {
  let exitCode = 0;
  for (const target of targets) {
    try {
      await fn(target);
    } catch (err) {
      const message = expectedErrorMessage(err);
      if (message === undefined) throw err;
      report(`Error: ${message}\n`);
      exitCode = err instanceof OutcomeUnknown && exitCode !== 1 ? 3 : 1;
    }
  }
  if (exitCode !== 0) throw new AlreadyReported(exitCode);
}
