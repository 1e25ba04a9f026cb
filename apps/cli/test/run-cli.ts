// The CLI in this process, its output captured: what a test reads of a command.

import type { Io } from "../src/io.ts";
import { run } from "../src/program.ts";

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function runCli(argv: string[], env: Io["env"] = {}): Promise<CliResult> {
  let stdout = "";
  let stderr = "";
  const io: Io = {
    stdout: (t) => void (stdout += t),
    stderr: (t) => void (stderr += t),
    env,
    interactive: false,
    now: () => new Date(),
    labs: () => new Map(), // a lab running on this machine must not answer for a missing --host
  };
  const code = await run(argv, io);
  return { code, stdout, stderr };
}
