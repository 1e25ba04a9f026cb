// vipmesh node ls|inspect|update|rm

import type { Command } from "commander";
import { AVAILABILITIES } from "@vipmesh/core";
import { nodeJson } from "@vipmesh/engine-api";
import { CommandFailed, forEachTarget } from "../errors.ts";
import { type Io, printJson } from "../io.ts";
import { choice, collect, collectKeyValue } from "../options.ts";
import { NODE_HEADERS, nodeRows } from "../table-rows.ts";
import { type ListOptions, addListOptions, printList, withManager } from "./shared.ts";

interface UpdateOptions {
  availability?: "active" | "drain";
  labelAdd?: Record<string, string>;
  labelRm?: string[];
}

export function registerNodeCommands(program: Command, io: Io): void {
  const node = program.command("node").description("Manage the cluster's nodes");

  addListOptions(node.command("ls").alias("list").description("List nodes")).action(
    async (opts: ListOptions, cmd: Command) => {
      const { nodes } = await withManager(io, cmd, (conn) => conn.call("listNodes", {}));
      printList(io, opts, nodes, { json: nodeJson, headers: NODE_HEADERS, rows: nodeRows });
    },
  );

  node
    .command("inspect")
    .description("Show nodes as JSON")
    .argument("<node...>", "ID, ID prefix or hostname")
    .option("--json", "print JSON (the default)")
    .action(async (targets: string[], _opts: unknown, cmd: Command) => {
      const found: unknown[] = [];
      await withManager(io, cmd, (conn) =>
        forEachTarget(targets, io.stderr, async (target) => {
          const { node: n } = await conn.call("inspectNode", { node: target });
          if (n) found.push(nodeJson(n));
        }).finally(() => printJson(io, found)),
      );
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
