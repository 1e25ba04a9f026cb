// vipmesh exec TASK -- CMD: run a command inside a task's sandbox — its network
// and UTS namespaces, and its resolv.conf/hosts — with CMD's exit status.

import type { Command } from "commander";
import { spawnSync } from "node:child_process";
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
    .action(async (task: string, command: string[], _o: unknown, cmd: Command) => {
      if (process.getuid?.() !== 0) throw new UsageError("entering a sandbox needs root");
      const taskId = await withManager(io, cmd, async (conn) => {
        const slot = /^(.+)\.(\d+)$/.exec(task);
        const { tasks } = await conn.call("listTasks", slot ? { service: slot[1]! } : {});
        const running = tasks.filter((t) => t.status?.state === "running");
        const match = slot
          ? running.filter((t) => t.slot === Number(slot[2]))
          : running.filter((t) => t.id.startsWith(task));
        if (match.length === 0) throw new CommandFailed(`no running task ${task}`);
        if (match.length > 1) throw new CommandFailed(`task ${task} is ambiguous: ${match.map((t) => t.id).join(", ")}`);
        return match[0]!.id;
      });
      const { listNamespaces, namespacePids } = await import("@vipmesh/lab");
      const netns = listNamespaces().find((n) => n.endsWith(taskId));
      if (!netns) throw new CommandFailed(`task ${taskId} has no sandbox on this machine`);
      // the task's own process holds its UTS namespace (its hostname)
      const pid = namespacePids(netns)[0]?.toString();
      const inner = pid ? ["nsenter", "-t", pid, "-u", ...withoutSeparator(command)] : withoutSeparator(command);
      const r = spawnSync("ip", ["netns", "exec", netns, ...inner], { stdio: "inherit" });
      if (r.status !== 0) throw new ChildExit(r.status ?? 1);
    });
}
