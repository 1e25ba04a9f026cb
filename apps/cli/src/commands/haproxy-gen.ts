// vipmesh haproxy-gen: keeps an external HAProxy's config equal to the cluster
// (apps/haproxy-gen): once, or following every change with --watch.

import { dirname, join, resolve } from "node:path";
import type { Command } from "commander";
import { resolveManager } from "../host.ts";
import { CommandFailed, UsageError } from "../errors.ts";
import type { Io } from "../io.ts";
import { wholeNumber } from "../options.ts";
import { managerSources } from "./shared.ts";
import { nextSignal } from "../signals.ts";

interface HaproxyGenFlags {
  output: string;
  template?: string;
  reload?: string;
  masterSocket?: string;
  statsSocket?: string;
  statsPort: number;
  tlsCert?: string;
  watch?: boolean;
}

export function registerHaproxyGenCommand(program: Command, io: Io): void {
  program
    .command("haproxy-gen")
    .description("Render haproxy.cfg for every node's published ports, validate it with haproxy -c, swap it in and reload")
    .requiredOption("--output <file>", "the live haproxy.cfg (written only with a config that passed haproxy -c)")
    .option("--template <file>", "your own Handlebars template (default: the one that ships with vipmesh)")
    .option("--reload <command>", "shell command that reloads HAProxy after a change")
    .option("--master-socket <path>", "HAProxy's master CLI socket (haproxy -W -S PATH): reloads through it, without a command")
    .option("--stats-socket <path>", "HAProxy's runtime API socket, in the config; server changes go through it without a reload (default: beside --output)")
    .option("--stats-port <port>", "port of the stats page in the default template", wholeNumber, 8404)
    .option("--tls-cert <pem>", "certificate and key (PEM) for HTTPS on 443 beside the shared HTTP frontend on 80")
    .option("--watch", "keep following the cluster, applying every change, until SIGINT/SIGTERM")
    .action(async (o: HaproxyGenFlags, cmd: Command) => {
      if (o.reload && o.masterSocket) throw new UsageError("give --reload or --master-socket, not both");
      // a watcher: a running lab's read-only identity will do
      const manager = resolveManager(managerSources(io, cmd), "readonly");
      const output = resolve(o.output);
      const { Generator } = await import("@vipmesh/haproxy-gen");
      const generator = new Generator({
        managers: manager.addresses,
        credentials: manager.credentials,
        output,
        ...(o.template ? { template: resolve(o.template) } : {}),
        ...(o.masterSocket ? { masterSocket: resolve(o.masterSocket) } : {}),
        ...(o.reload ? { reloadCommand: o.reload } : {}),
        runtime: {
          statsSocket: o.statsSocket ? resolve(o.statsSocket) : join(dirname(output), "haproxy-admin.sock"),
          statsPort: o.statsPort,
          tlsCert: o.tlsCert ? resolve(o.tlsCert) : "",
        },
        log: (line) => io.stderr(`${new Date().toISOString()} haproxy-gen: ${line}\n`),
      });
      if (!o.watch) {
        const applied = await generator.once().catch((err: unknown) => {
          throw new CommandFailed(err instanceof Error ? err.message : String(err));
        });
        io.stdout(`${output}: ${applied}\n`);
        return;
      }
      const stopping = nextSignal(["SIGINT", "SIGTERM"]);
      generator.watch();
      io.stderr(`${await stopping.received}: stopping haproxy-gen\n`);
      await generator.stop();
    });
}
