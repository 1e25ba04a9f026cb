// vipmesh network create|ls|inspect|rm

import type { Command } from "commander";
import { networkJson, networkServicesJson } from "@vipmesh/engine-api";
import { forEachTarget } from "../errors.ts";
import { type Io, printJson } from "../io.ts";
import { collectKeyValue } from "../options.ts";
import { NETWORK_HEADERS, networkRows } from "../table-rows.ts";
import { type ListOptions, addListOptions, printList, withManager } from "./shared.ts";

interface CreateOptions {
  driver: string;
  subnet?: string;
  opt?: Record<string, string>;
  label?: Record<string, string>;
  ingress?: boolean;
}

export function registerNetworkCommands(program: Command, io: Io): void {
  const network = program.command("network").description("Manage overlay networks");

  network
    .command("create")
    .description("Create a network")
    .argument("<name>")
    .option("-d, --driver <driver>", "network driver", "overlay")
    .option("--subnet <cidr>", "subnet, e.g. 10.0.9.0/24 (default: the next free /24 of 10.0.0.0/8)")
    .option("-o, --opt <key=value>", "driver option, e.g. --opt encrypted (repeatable)", collectKeyValue)
    .option("--label <key=value>", "label (repeatable)", collectKeyValue)
    .option("--ingress", "make this the routing-mesh network for published ports")
    .action(async (name: string, opts: CreateOptions, cmd: Command) => {
      const { network: created } = await withManager(io, cmd, (conn) =>
        conn.call("createNetwork", {
          spec: {
            name,
            driver: opts.driver,
            labels: opts.label ?? {},
            options: opts.opt ?? {},
            ipam: opts.subnet ? [{ subnet: opts.subnet }] : [],
            ingress: opts.ingress === true,
          },
        }),
      );
      io.stdout(`${created?.id}\n`);
    });

  addListOptions(network.command("ls").alias("list").description("List networks")).action(
    async (opts: ListOptions, cmd: Command) => {
      const { networks } = await withManager(io, cmd, (conn) => conn.call("listNetworks", {}));
      printList(io, opts, networks, { json: networkJson, headers: NETWORK_HEADERS, rows: networkRows });
    },
  );

  network
    .command("inspect")
    .description("Show networks as JSON")
    .argument("<network...>", "ID, ID prefix or name")
    .option("--json", "print JSON (the default)")
    .option("-v, --verbose", "add every service on the network: its VIP and its tasks with their state")
    .action(async (targets: string[], opts: { verbose?: boolean }, cmd: Command) => {
      const found: unknown[] = [];
      await withManager(io, cmd, async (conn) => {
        const cluster = opts.verbose
          ? {
              services: (await conn.call("listServices", {})).services,
              tasks: (await conn.call("listTasks", {})).tasks,
              nodes: (await conn.call("listNodes", {})).nodes,
            }
          : undefined;
        await forEachTarget(targets, io.stderr, async (target) => {
          const { network: n } = await conn.call("inspectNetwork", { network: target });
          if (!n) return;
          found.push(
            cluster
              ? { ...networkJson(n), Services: networkServicesJson(n, cluster.services, cluster.tasks, cluster.nodes) }
              : networkJson(n),
          );
        }).finally(() => printJson(io, found));
      });
    });

  network
    .command("rm")
    .alias("remove")
    .description("Remove networks")
    .argument("<network...>", "ID, ID prefix or name")
    .action(async (targets: string[], _opts: unknown, cmd: Command) => {
      await withManager(io, cmd, (conn) =>
        forEachTarget(targets, io.stderr, async (target) => {
          await conn.call("removeNetwork", { network: target });
          io.stdout(`${target}\n`);
        }),
      );
    });
}
