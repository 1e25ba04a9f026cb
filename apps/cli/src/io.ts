// Where the CLI writes and what it reads from its environment, injectable so
// tests can run commands in-process.

export type Writer = (text: string) => void;

export interface Io {
  stdout: Writer;
  stderr: Writer;
  env: Readonly<Record<string, string | undefined>>;
  /** stderr is a terminal: progress rewrites one line instead of printing one per update. */
  interactive: boolean;
  now(): Date;
  /** The labs running on this machine, by name: where commands go without --host, with the lab's identity. */
  labs(): ReadonlyMap<string, LabEndpoint>;
}

import { type LabEndpoint, runningLabs } from "@vipmesh/lab";

export function processIo(): Io {
  return {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    env: process.env,
    interactive: process.stderr.isTTY === true,
    now: () => new Date(),
    labs: runningLabs,
  };
}

export const printJson = (io: Io, value: unknown): void => io.stdout(`${JSON.stringify(value, null, 2)}\n`);
