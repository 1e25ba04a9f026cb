// vipmesh lab up|down|status|exec|env|image, lab node stop|start|pause|resume, lab manager
// stop|start, lab etcd stop|start: a whole cluster on this machine (one manager on SQLite, or
// several on etcd), the faults to try on it, and a sample image to run on it.

import type { Command } from "commander";
import { InvalidArgumentError } from "commander";
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { ChildExit, CommandFailed, UsageError } from "../errors.ts";
import type { Io } from "../io.ts";
import { withoutSeparator } from "../options.ts";
import { collect, cpus, duration, ramBytes, wholeNumber } from "../options.ts";

interface UpOptions {
  name: string;
  nodes: number;
  managers: number;
  store?: string;
  dataplane?: string;
  heartbeat?: number;
  containerd: boolean;
  nodeCpus?: number;
  nodeMemory?: number;
  nodeResources?: string[];
}

interface NodeResources {
  nanoCpus?: number;
  memoryBytes?: number;
}

/** `--node-resources NODE=cpus=N,memory=SIZE` (repeatable): one node's capacity, Docker's units. */
export function nodeResources(specs: readonly string[]): Record<string, NodeResources> {
  const byNode: Record<string, NodeResources> = {};
  for (const spec of specs) {
    const m = /^([^=,]+)=(.+)$/.exec(spec);
    if (!m) throw new UsageError(`--node-resources wants NODE=cpus=N,memory=SIZE (e.g. node2=cpus=1,memory=512m), got "${spec}"`);
    const resources: NodeResources = {};
    for (const field of m[2]!.split(",")) {
      const [key, value = ""] = field.split("=", 2) as [string, string?];
      try {
        if (key === "cpus") resources.nanoCpus = cpus(value);
        else if (key === "memory") resources.memoryBytes = ramBytes(value);
        else throw new InvalidArgumentError(`unknown field "${key}": cpus or memory`);
      } catch (err) {
        throw new UsageError(`--node-resources ${spec}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    byNode[m[1]!] = { ...byNode[m[1]!], ...resources };
  }
  return byNode;
}

/** The most managers (and etcd members) a lab runs: etcd's advice is 3, 5 or 7 members at most. */
const MAX_MANAGERS = 7;

/**
 * `--managers N --store S` as the lab takes it: 0 for today's single manager
 * on SQLite, else that many managers on etcd (several need etcd).
 */
export function managersOnEtcd(managers: number, store: string | undefined): number {
  if (managers < 1 || managers > MAX_MANAGERS) throw new UsageError(`--managers must be between 1 and ${MAX_MANAGERS}`);
  const backend = store ?? (managers > 1 ? "etcd" : "sqlite");
  if (backend !== "sqlite" && backend !== "etcd") throw new UsageError(`--store must be sqlite or etcd, got "${backend}"`);
  if (backend === "sqlite" && managers > 1) throw new UsageError("several managers share their state through etcd: --store etcd, or --managers 1");
  return backend === "etcd" ? managers : 0;
}

const lab = () => import("@vipmesh/lab");

function requireRoot(): void {
  if (process.getuid?.() !== 0) throw new UsageError("the lab makes network namespaces: run it as root");
}

export function registerLabCommands(program: Command, io: Io): void {
  const cmd = program
    .command("lab")
    .description("Run a whole cluster on this machine, one network namespace per node")
    .enablePositionalOptions();
  const nameOption = (c: Command) => c.option("--name <name>", "which lab", "lab");

  nameOption(cmd.command("up").description("Build the underlay, start the manager(s) and one agent per node"))
    .option("--nodes <n>", "number of nodes", wholeNumber, 3)
    .option("--managers <n>", "managers m1…mN, each with an etcd member beside it (1: one manager on SQLite, unless --store etcd)", wholeNumber, 1)
    .option("--store <store>", "the managers' store: sqlite (one manager) or etcd (default etcd for several)")
    .option("--dataplane <dataplane>", "agents' load-balancing dataplane: auto, nftables or ipvs")
    .option("--heartbeat <duration>", "agents' heartbeat period, e.g. 1s", duration)
    .option("--no-containerd", "no containerd per node: the nodes run process tasks only")
    .option("--node-cpus <n>", "the CPUs every node states it has (for --reserve-cpu), e.g. 2 or 0.5", cpus)
    .option("--node-memory <size>", "the memory every node states it has (for --reserve-memory), e.g. 1g", ramBytes)
    .option("--node-resources <node=cpus=N,memory=SIZE>", "one node's capacity, over --node-cpus/--node-memory (repeatable), e.g. node2=cpus=1,memory=512m", collect)
    .action(async (o: UpOptions) => {
      requireRoot();
      if (o.nodes < 1 || o.nodes > 50) throw new UsageError("--nodes must be between 1 and 50");
      const managers = managersOnEtcd(o.managers, o.store);
      const resourcesByNode = nodeResources(o.nodeResources ?? []);
      const { labUp } = await lab();
      const l = await labUp({
        name: o.name,
        nodes: o.nodes,
        managers,
        containerd: o.containerd,
        ...(o.nodeCpus !== undefined || o.nodeMemory !== undefined
          ? { nodeResources: { ...(o.nodeCpus !== undefined ? { nanoCpus: o.nodeCpus } : {}), ...(o.nodeMemory !== undefined ? { memoryBytes: o.nodeMemory } : {}) } }
          : {}),
        resourcesByNode,
        ...(o.dataplane ? { dataplane: o.dataplane } : {}),
        ...(o.heartbeat ? { heartbeatMs: o.heartbeat } : {}),
        log: (line) => io.stderr(`lab ${o.name}: ${line}\n`),
      }).catch((err: unknown) => {
        throw new CommandFailed(err instanceof Error ? err.message : String(err));
      });
      const managersSaid = l.managers ? `managers on etcd ${l.managers.map((m) => `${m.name} ${m.addr} (${m.socket})`).join(", ")}` : `manager ${l.socket}`;
      io.stdout(`lab ${l.name} is up: ${l.nodes.map((n) => `${n.hostname} ${n.addr}`).join(", ")}; ${managersSaid}; docker API ${l.dockerSocket} ('vipmesh lab env --name ${l.name}')\n`);
    });

  nameOption(cmd.command("down").description("Remove every namespace, link, process and file of the lab")).action(
    async (o: { name: string }) => {
      requireRoot();
      (await lab()).labDown(o.name);
      io.stdout(`lab ${o.name} is down\n`);
    },
  );

  nameOption(cmd.command("status").description("List the lab's processes: manager(s), etcd members, agents, and whether each runs")).action(
    async (o: { name: string }) => {
      requireRoot();
      const { readLab, labProcesses } = await lab();
      for (const p of labProcesses(readLab(o.name))) io.stdout(`${p.what.padEnd(16)} ${p.pid === undefined ? "stopped" : `running (pid ${p.pid})`}\n`);
    },
  );

  nameOption(
    cmd
      .command("exec")
      .description("Run a command in a node's (or the client's) namespace")
      .argument("<target>", "node1, node2, … or client")
      .argument("<command...>", "what to run"),
  )
    .passThroughOptions()
    .action(async (target: string, command: string[], o: { name: string }) => {
      requireRoot();
      const { readLab, namespaceOf } = await lab();
      const ns = namespaceOf(readLab(o.name), target);
      const r = spawnSync("ip", ["netns", "exec", ns, ...withoutSeparator(command)], { stdio: "inherit" });
      if (r.status !== 0) throw new ChildExit(r.status ?? 1);
    });

  nameOption(cmd.command("env").description("Print the shell lines that point the docker CLI at the lab's Docker Engine API"))
    .option("--tls", "over TCP with mutual TLS on the manager's underlay address (reachable from the lab's namespaces)")
    .action(async (o: { name: string; tls?: boolean }) => {
      requireRoot();
      const { readLab, dockerTarget } = await lab();
      const l = readLab(o.name);
      const exports = (t: { host: string; certDir?: string }) =>
        `export DOCKER_HOST=${t.host}${t.certDir ? ` DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=${t.certDir}` : ""}`;
      const inside = `e.g. 'ip netns exec ${l.client} docker service ls'`;
      if (o.tls) {
        io.stdout(`# the underlay exists only in the lab's namespaces: run docker there, ${inside}\n${exports(dockerTarget(l, true))}\n`);
        return;
      }
      io.stdout(`${exports(dockerTarget(l))}\nunset DOCKER_TLS_VERIFY DOCKER_CERT_PATH DOCKER_CONTEXT\n`);
      io.stdout(`# or over TCP with mutual TLS, from the lab's namespaces (vipmesh lab env --tls), ${inside}:\n`);
      io.stdout(`# ${exports(dockerTarget(l, true))}\n`);
    });

  cmd
    .command("image")
    .description(`Write the lab's sample image (busybox httpd answering as whoami) as a tarball, for 'vipmesh image load'`)
    .requiredOption("--out <file>", "where to write it")
    .option("--format <format>", "docker-archive (as docker save writes) or oci (an OCI image layout)", "docker-archive")
    .action(async (o: { out: string; format: string }) => {
      if (o.format !== "docker-archive" && o.format !== "oci") throw new UsageError(`--format must be docker-archive or oci, got "${o.format}"`);
      const { sampleImageArchive, SAMPLE_IMAGE } = await lab();
      writeFileSync(o.out, sampleImageArchive(o.format));
      io.stdout(`${SAMPLE_IMAGE} written to ${o.out} ('vipmesh image load ${o.out}' loads it on every node)\n`);
    });

  const node = cmd.command("node").description("Stop, start, pause or resume a node of the lab");
  const nodeVerbs = {
    stop: ["Stop the node's agent and its supervisor (so it is not restarted) and cut its underlay link", "stopped"],
    start: ["Restore the link, and the supervised agent unless it runs (also after a crash)", "started"],
    pause: ["Freeze the node's agent (SIGSTOP): no heartbeat, no session; its tasks and links stay", "paused"],
    resume: ["Let a paused agent go on (SIGCONT)", "resumed"],
  } as const;
  for (const [verb, [description, done]] of Object.entries(nodeVerbs)) {
    nameOption(node.command(verb).description(description).argument("<node>", "node1, node2, …")).action(
      async (hostname: string, o: { name: string }) => {
        requireRoot();
        const l = await lab();
        const run = { stop: l.nodeStop, start: l.nodeStart, pause: l.nodePause, resume: l.nodeResume }[verb as keyof typeof nodeVerbs];
        run(l.readLab(o.name), hostname);
        io.stdout(`${hostname} ${done}\n`);
      },
    );
  }

  const manager = cmd.command("manager").description("Stop or start the lab's manager, or one of its managers on etcd");
  const managerArg = ["[manager]", "m1, m2, … (a lab with managers on etcd); none for the single manager"] as const;
  nameOption(manager.command("stop").description("Kill the manager (SIGKILL, like a crash); the agents keep trying to reach it").argument(...managerArg)).action(
    async (which: string | undefined, o: { name: string }) => {
      requireRoot();
      const { readLab, killManager, killLabManager } = await lab();
      const l = readLab(o.name);
      const named = managerNamed(l, which);
      if (named) killLabManager(l, named);
      else killManager(l);
      io.stdout(`manager ${which ?? ""}`.trimEnd() + " stopped\n");
    },
  );
  nameOption(manager.command("start").description("Start the manager again on its data dir, unless it runs").argument(...managerArg)).action(
    async (which: string | undefined, o: { name: string }) => {
      requireRoot();
      const { readLab, managerRuns, startManager, startLabManager } = await lab();
      const l = readLab(o.name);
      const named = managerNamed(l, which);
      if (named) await startLabManager(l, named);
      else if (!managerRuns(l)) await startManager(l);
      io.stdout(`manager ${which ?? ""}`.trimEnd() + " started\n");
    },
  );

  const etcd = cmd.command("etcd").description("Stop or start a member of the etcd cluster of a lab with managers on etcd");
  const memberArg = ["<member>", "1, 2, … (or m1, m2, …: the manager it runs beside)"] as const;
  nameOption(etcd.command("stop").description("Kill the member (SIGKILL, like a crash); its data dir stays").argument(...memberArg)).action(
    async (member: string, o: { name: string }) => {
      requireRoot();
      const { readLab, killEtcdMember } = await lab();
      killEtcdMember(readLab(o.name), member);
      io.stdout(`etcd member ${member} stopped\n`);
    },
  );
  nameOption(etcd.command("start").description("Start the member again on its data dir, unless it runs: it rejoins, and serves once a quorum runs").argument(...memberArg)).action(
    async (member: string, o: { name: string }) => {
      requireRoot();
      const { readLab, startEtcdMember } = await lab();
      await startEtcdMember(readLab(o.name), member).catch((err: unknown) => {
        throw new CommandFailed(err instanceof Error ? err.message : String(err));
      });
      io.stdout(`etcd member ${member} started\n`);
    },
  );
}

/** Which of a lab's managers on etcd a command names: it must name one; a lab of one manager takes no name. */
function managerNamed(l: { managers?: readonly { name: string }[] }, which: string | undefined): string | undefined {
  if (!l.managers) {
    if (which !== undefined) throw new UsageError(`the lab runs one manager (on SQLite): 'vipmesh lab manager stop|start' names none, got "${which}"`);
    return undefined;
  }
  if (which === undefined) throw new UsageError(`the lab runs managers ${l.managers.map((m) => m.name).join(", ")}: name one`);
  return which;
}
