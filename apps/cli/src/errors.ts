// The CLI's expected failures. Each carries its exit code; the program prints
// the message alone (no stack) and exits with that code.

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

/** Failures were already reported one by one (e.g. `rm a b` where b is missing): exit 1 silently. */
export class AlreadyReported extends Error {
  override readonly name = "AlreadyReported";
  readonly exitCode = 1;
}
