// vipmesh node ls|inspect|update|rm

import type { Command } from "commander";
import { AVAILABILITIES } from "@vipmesh/core";
import { managerNodeJson, nodeJson } from "@vipmesh/engine-api";
import { CommandFailed, forEachTarget } from "../errors.ts";
import { type Io, printJson } from "../io.ts";
import { choice, collect, collectKeyValue } from "../options.ts";
import { formatTable } from "../table.ts";
import { managerRows, NODE_HEADERS, nodeRows } from "../table-rows.ts";
import { type ListOptions, addListOptions, withManager } from "./shared.ts";

interface UpdateOptions {
  availability?: "active" | "drain";
  labelAdd?: Record<string, string>;
  labelRm?: string[];
}

export function registerNodeCommands(program: Command, io: Io): void {
  const node = program.command("node").description("Manage the cluster's nodes");

  addListOptions(node.command("ls").alias("list").description("List nodes: the managers, then the agents' nodes")).action(
    async (opts: ListOptions, cmd: Command) => {
      const [{ managers }, { nodes }] = await withManager(io, cmd, (conn) => Promise.all([conn.call("listManagers", {}), conn.call("listNodes", {})]));
      if (opts.json) printJson(io, [...managers.map(managerNodeJson), ...nodes.map(nodeJson)]);
      else if (opts.quiet) io.stdout([...managers, ...nodes].map((n) => `${n.id}\n`).join(""));
      else io.stdout(formatTable(NODE_HEADERS, [...managerRows(managers), ...nodeRows(nodes)]));
    },
  );

  node
    .command("inspect")
    .description("Show nodes as JSON")
    .argument("<node...>", "ID, ID prefix or hostname")
    .option("--json", "print JSON (the default)")
    .action(async (targets: string[], _opts: unknown, cmd: Command) => {
      const found: unknown[] = [];
      await withManager(io, cmd, async (conn) => {
        const { managers } = await conn.call("listManagers", {});
        await forEachTarget(targets, io.stderr, async (target) => {
          // a manager by its ID or hostname; anything else is an agent's node
          const manager = managers.find((m) => m.id === target || m.hostname === target);
          if (manager) return void found.push(managerNodeJson(manager));
          const { node: n } = await conn.call("inspectNode", { node: target });
          if (n) found.push(nodeJson(n));
        }).finally(() => printJson(io, found));
      });
    });

  node
    .command("update")
    .description("Change a node's availability or labels")
    .argument("<node>", "ID, ID prefix or hostname")
    .addOption(choice("--availability <availability>", "active, or drain to move its tasks away", AVAILABILITIES))
    .option("--label-add <key=value>", "add or replace a label (repeatable)", collectKeyValue)
    .option("--label-rm <key>", "remove a label (repeatable)", collect)
    .action(async (target: string, opts: UpdateOptions, cmd: Command) => {
      await withManager(io, cmd, async (conn) => {
        const { node: current } = await conn.call("inspectNode", { node: target });
        if (!current?.spec) throw new CommandFailed(`the manager returned node ${target} without a spec`);
        const labels = { ...current.spec.labels };
        for (const key of opts.labelRm ?? []) delete labels[key];
        await conn.call("updateNode", {
          node: current.id,
          version: current.version,
          spec: {
            labels: { ...labels, ...opts.labelAdd },
            availability: opts.availability ?? current.spec.availability,
          },
        });
      });
      io.stdout(`${target}\n`);
    });

  node
    .command("rm")
    .alias("remove")
    .description("Remove nodes from the cluster")
    .argument("<node...>", "ID, ID prefix or hostname")
    .option("-f, --force", "remove a node even if it is not down")
    .action(async (targets: string[], opts: { force?: boolean }, cmd: Command) => {
      await withManager(io, cmd, (conn) =>
        forEachTarget(targets, io.stderr, async (target) => {
          await conn.call("removeNode", { node: target, force: opts.force === true });
          io.stdout(`${target}\n`);
        }),
      );
    });
}
