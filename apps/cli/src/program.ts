// The vipmesh command line: builds the commander program and runs it with
// one place that turns failures into messages and exit codes.

import { Command, CommanderError } from "commander";
import { registerManagerCommand } from "./commands/manager.ts";
import { registerCaCommands } from "./commands/ca.ts";
import { registerNetworkCommands } from "./commands/network.ts";
import { registerAgentCommand } from "./commands/agent.ts";
import { registerExecCommand } from "./commands/exec.ts";
import { registerHaproxyGenCommand } from "./commands/haproxy-gen.ts";
import { registerImageCommands } from "./commands/image.ts";
import { registerLabCommands } from "./commands/lab.ts";
import { registerJoinTokenCommand } from "./commands/join-token.ts";
import { registerNodeCommands } from "./commands/node.ts";
import { registerServiceCommands } from "./commands/service.ts";
import { registerStoreCommands } from "./commands/store.ts";
import { registerWhoamiCommand } from "./commands/whoami.ts";
import { AlreadyReported, ChildExit, CommandFailed, UsageError, expectedErrorMessage } from "./errors.ts";
import { type Io, processIo } from "./io.ts";

export function buildProgram(io: Io): Command {
  // Settings made before .command() are inherited by every subcommand.
  const program = new Command("vipmesh")
    .description("Swarm-style services with virtual IPs over a cluster of Linux machines")
    .option(
      "-H, --host <addr>",
      "manager address: host:port or a unix socket path, or several, comma-separated, tried in turn until one is reached (default: $VIPMESH_HOST, or the running lab's managers)",
    )
    .option("--tls-dir <dir>", "the identity to show the manager: ca.pem, cert.pem, key.pem (default: $VIPMESH_TLS_DIR, or the running lab's admin)")
    .option("--insecure", "plaintext, to a manager started with --insecure (debugging only)")
    .option("--call-timeout <duration>", "how long to wait for the manager to answer a call (default: $VIPMESH_CALL_TIMEOUT, or 5s for a read and 30s for a change)")
    .exitOverride()
    .configureOutput({
      writeOut: io.stdout,
      writeErr: io.stderr,
      outputError: (text, write) => write(text.replace(/^error: /, "Error: ")),
    })
    .showHelpAfterError("(add --help for usage)")
    // `exec` and `lab exec` pass everything after their arguments to the command they run
    .enablePositionalOptions();
  registerManagerCommand(program, io);
  registerCaCommands(program, io);
  registerAgentCommand(program, io);
  registerNetworkCommands(program, io);
  registerServiceCommands(program, io);
  registerNodeCommands(program, io);
  registerImageCommands(program, io);
  registerJoinTokenCommand(program, io);
  registerStoreCommands(program, io);
  registerWhoamiCommand(program, io);
  registerExecCommand(program, io);
  registerLabCommands(program, io);
  registerHaproxyGenCommand(program, io);
  return program;
}

/** Runs one command line (without the node and script arguments); resolves with the exit code. */
export async function run(argv: readonly string[], io: Io = processIo()): Promise<number> {
  try {
    await buildProgram(io).parseAsync([...argv], { from: "user" });
    return 0;
  } catch (err) {
    return exitCodeFor(err, io);
  }
}

function exitCodeFor(err: unknown, io: Io): number {
  // Commander has already printed its message (or the help).
  if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
  if (err instanceof AlreadyReported || err instanceof ChildExit) return err.exitCode;
  const message = expectedErrorMessage(err);
  if (message !== undefined) {
    io.stderr(`Error: ${message}\n`);
    return err instanceof UsageError || err instanceof CommandFailed ? err.exitCode : 1;
  }
  // A bug: the stack helps whoever reports it.
  io.stderr(`Error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  return 1;
}
