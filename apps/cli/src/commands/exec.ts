// vipmesh exec TASK -- CMD: run a command inside a task — its namespaces,
// cgroups and view of the node (a container's: its root) — as confined as
// the task itself, with CMD's exit status.

import type { Command } from "commander";
import { spawnSync } from "node:child_process";
import { taskSpecFromWire } from "@vipmesh/api";
import { taskConfinement } from "@vipmesh/core";
import { ChildExit, CommandFailed, UsageError } from "../errors.ts";
import type { Io } from "../io.ts";
import { withoutSeparator } from "../options.ts";
import { withManager } from "./shared.ts";

export function registerExecCommand(program: Command, io: Io): void {
  program
    .command("exec")
    .description("Run a command inside a task's sandbox")
    .argument("<task>", "task ID (or prefix), or SERVICE.SLOT for that slot's running task, e.g. collabweb.1")
    .argument("<command...>", "what to run")
    .passThroughOptions()
    .action(async (taskArg: string, command: string[], _o: unknown, cmd: Command) => {
      if (process.getuid?.() !== 0) throw new UsageError("entering a sandbox needs root");
      const task = await withManager(io, cmd, async (conn) => {
        const slot = /^(.+)\.(\d+)$/.exec(taskArg);
        const { tasks } = await conn.call("listTasks", slot ? { service: slot[1]! } : {});
        const running = tasks.filter((t) => t.status?.state === "running");
        const match = slot
          ? running.filter((t) => t.slot === Number(slot[2]))
          : running.filter((t) => t.id.startsWith(taskArg));
        if (match.length === 0) throw new CommandFailed(`no running task ${taskArg}`);
        if (match.length > 1) throw new CommandFailed(`task ${taskArg} is ambiguous: ${match.map((t) => t.id).join(", ")}`);
        return match[0]!;
      });
      const { listNamespaces, namespacePids } = await import("@vipmesh/lab");
      const { CONFINE, containerInitUser, enterArgs, isTaskInit } = await import("@vipmesh/agent");
      const netns = listNamespaces().find((n) => n.endsWith(task.id));
      const init = netns ? namespacePids(netns).find(isTaskInit) : undefined;
      if (!init) throw new CommandFailed(`task ${task.id} does not run on this machine`);
      // a container's PID 1 runs as its image's user, resolved when it started: the command runs as it too
      const containerUser = containerInitUser(init);
      const confinement = { ...taskConfinement(taskSpecFromWire(task.spec)), ...(containerUser ? { user: containerUser } : {}) };
      const args = enterArgs(init, confinement, withoutSeparator(command), { container: containerUser !== undefined });
      const r = spawnSync(CONFINE, args, { stdio: "inherit" });
      if (r.status !== 0) throw new ChildExit(r.status ?? 1);
    });
}
