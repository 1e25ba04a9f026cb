// vipmesh whoami: runs the whoami workload (HTTP + UDP on one port) until SIGINT/SIGTERM.

import { type Command, InvalidArgumentError } from "commander";
import { startWhoami } from "@vipmesh/whoami";
import { CommandFailed } from "../errors.ts";
import type { Io } from "../io.ts";
import { nextSignal } from "../signals.ts";

export function registerWhoamiCommand(program: Command, io: Io): void {
  program
    .command("whoami")
    .description("Run the whoami workload: HTTP and UDP on one port, answering with this task's identity")
    .option("--port <port>", "TCP and UDP port to listen on (1-65535)", port, 80)
    .action(async (opts: { port: number }) => {
      // Listening before the server starts, so a stop during startup still exits 0.
      const signal = nextSignal(["SIGINT", "SIGTERM"]);
      try {
        const server = await startWhoami({ port: opts.port, env: io.env }).catch((err: unknown) => {
          // e.g. the port is in use, or below 1024 without the right to bind it
          throw new CommandFailed(err instanceof Error ? err.message : String(err));
        });
        io.stdout(`whoami listening on :${server.port} (tcp+udp) as task ${server.task}\n`);
        io.stderr(`${await signal.received}: stopping whoami\n`);
        await server.close();
      } finally {
        signal.cancel();
      }
    });
}

function port(value: string): number {
  const n = /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!(n >= 1 && n <= 65535)) throw new InvalidArgumentError("expected a port number from 1 to 65535");
  return n;
}
