// vipmesh join-token worker|manager [--rotate] [-q]: the token a new node joins with.

import type { Command } from "commander";
import { UsageError } from "../errors.ts";
import type { Io } from "../io.ts";
import { withManager } from "./shared.ts";

interface JoinTokenOptions {
  rotate?: boolean;
  quiet?: boolean;
}

export function registerJoinTokenCommand(program: Command, io: Io): void {
  program
    .command("join-token")
    .description("Print the token a node joins the cluster with; --rotate replaces it (joined nodes keep their certificates)")
    .argument("<role>", "worker or manager")
    .option("--rotate", "make a new token: the old one stops working for new joins at once")
    .option("-q, --quiet", "print the token only")
    .action(async (role: string, opts: JoinTokenOptions, cmd: Command) => {
      if (role !== "worker" && role !== "manager") throw new UsageError(`join-token: the role is "worker" or "manager", not "${role}"`);
      const { token } = await withManager(io, cmd, (conn) => conn.call("getJoinToken", { role, rotate: opts.rotate ?? false }));
      if (opts.quiet) {
        io.stdout(`${token}\n`);
        return;
      }
      if (opts.rotate) io.stdout(`Rotated the ${role} join token: the old one no longer joins a node.\n\n`);
      io.stdout(
        `To add a ${role} to this cluster, run this on it (as root):\n\n` +
          `    (umask 077; echo ${token} > /etc/vipmesh-join-token)\n` +
          "    vipmesh agent --manager MANAGER-ADDR:PORT --advertise-addr THIS-NODE-ADDR --token-file /etc/vipmesh-join-token\n\n" +
          "The token is a secret: anyone who has it can join a node. It is needed only once (the node keeps its certificate): remove the file after.\n",
      );
    });
}
