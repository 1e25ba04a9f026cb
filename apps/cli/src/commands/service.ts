// vipmesh service create|ls|inspect|ps|logs|scale|update|rollback|rm

import type { Command } from "commander";
import type { wire } from "@vipmesh/api";
import { serviceJson, taskJson } from "@vipmesh/engine-api";
import {
  DEFAULT_PIDS_LIMIT,
  ENDPOINT_MODES,
  type EndpointMode,
  LB_AFFINITIES,
  LB_SCHEDULER_NAMES,
  type LbAffinity,
  type LbSchedulerName,
  type ResourceLimits,
  type Resources,
  type ServiceSpec,
  type ServiceUpdate,
  applyServiceUpdate,
  parsePublish,
} from "@vipmesh/core";
import { type ConvergenceWait, waitForConvergence } from "../convergence.ts";
import { CommandFailed, UsageError, forEachTarget } from "../errors.ts";
import { type Io, printJson } from "../io.ts";
import type { ManagerConnection } from "../manager-connection.ts";
import {
  type RestartPolicyOptions,
  type UpdateConfigOptions,
  type WaitOptions,
  addRestartPolicyOptions,
  addUpdateConfigOptions,
  addWaitOptions,
  choice,
  collect,
  collectKeyValue,
  cpus,
  duration,
  ramBytes,
  restartPolicyFrom,
  seconds,
  tailLines,
  updateConfigFrom,
  wholeNumber,
} from "../options.ts";
import { parseSinceFlag, printServiceLogs } from "../service-logs.ts";
import { buildServiceSpec, commandUpdate, parseNetworkAttachment, parsePublishRm, parseScale, shellWords, specFromWire } from "../service-spec.ts";
import { SERVICE_HEADERS, TASK_HEADERS, serviceRows, taskRows } from "../table-rows.ts";
import { type ListOptions, addListOptions, printList, withManager } from "./shared.ts";

/** --user, --cap-add/--cap-drop and --limit-*, as commander names them: what confines each task. */
interface ConfinementOptions {
  user?: string;
  capAdd?: string[];
  capDrop?: string[];
  limitCpu?: number;
  limitMemory?: number;
  limitPids?: number;
  reserveCpu?: number;
  reserveMemory?: number;
}

/** The same flags on create and update (Docker's); on update --cap-* follow Docker's merge and 0 clears a limit. */
function addConfinementOptions(cmd: Command, kind: "create" | "update"): Command {
  const update = kind === "update";
  return cmd
    .option("-u, --user <user>", `run the tasks as UID[:GID] or NAME[:GROUP] (${update ? '"" for root again' : "default: root, confined"})`)
    .option(
      "--cap-add <capability>",
      `add a Linux capability to Docker's default set, e.g. NET_ADMIN, or ALL (repeatable${update ? "; takes it off the drop list; RESET empties the add list" : ""})`,
      collect,
    )
    .option(
      "--cap-drop <capability>",
      `drop a Linux capability from the default set, e.g. NET_RAW, or ALL (repeatable${update ? "; takes it off the add list; RESET empties the drop list" : ""})`,
      collect,
    )
    .option("--limit-cpu <cpus>", `CPUs a task may use, e.g. 0.5 (${update ? "0 = no limit" : "default: no limit"})`, cpus)
    .option("--limit-memory <size>", `memory a task may use, e.g. 512m or 1g, at least 6m (${update ? "0 = no limit" : "default: no limit"})`, ramBytes)
    .option("--limit-pids <n>", `processes and threads a task may have (${update ? "0 = " : ""}default ${DEFAULT_PIDS_LIMIT})`, wholeNumber)
    .option("--reserve-cpu <cpus>", `CPUs a node must have free for a task, e.g. 0.5 (${update ? "0 = none" : "default: none"})`, cpus)
    .option("--reserve-memory <size>", `memory a node must have free for a task, e.g. 64m (${update ? "0 = none" : "default: none"})`, ramBytes);
}

/** The reservations the flags give; a flag not given is left out, so an update keeps its current value. */
function reservationsFrom(o: ConfinementOptions): Resources {
  return {
    ...(o.reserveCpu !== undefined ? { nanoCpus: o.reserveCpu } : {}),
    ...(o.reserveMemory !== undefined ? { memoryBytes: o.reserveMemory } : {}),
  };
}

/** The limits the flags give; a flag not given is left out, so an update keeps its current value. */
function limitsFrom(o: ConfinementOptions): ResourceLimits {
  return {
    ...(o.limitCpu !== undefined ? { nanoCpus: o.limitCpu } : {}),
    ...(o.limitMemory !== undefined ? { memoryBytes: o.limitMemory } : {}),
    ...(o.limitPids !== undefined ? { pids: o.limitPids } : {}),
  };
}

interface CreateOptions extends UpdateConfigOptions, WaitOptions, ConfinementOptions, RestartPolicyOptions {
  name: string;
  image?: string;
  entrypoint?: string;
  workdir?: string;
  hostname?: string;
  containerLabel?: Record<string, string>;
  replicas?: number;
  mode?: "replicated" | "global";
  network?: string[];
  endpointMode?: EndpointMode;
  publish?: string[];
  label?: Record<string, string>;
  constraint?: string[];
  env?: string[];
  lbScheduler?: LbSchedulerName;
  lbWeight?: Record<string, string>;
  lbAffinity?: LbAffinity;
  lbAffinityTimeout?: number;
  healthCmd?: string;
  healthInterval?: number;
  healthTimeout?: number;
  healthRetries?: number;
  healthStartPeriod?: number;
}

const LB_SCHEDULER_HELP = "how new connections to the VIP pick a task: random (default on nftables) or rr; lc and sh need ipvs nodes";
const LB_WEIGHT_HELP = "a slot's share of new connections, e.g. 2=3 (default 1; 0 drains it; repeatable)";
const LB_AFFINITY_HELP = "client-ip: a client's new connections go to the task its last one went to (default: none)";
const LB_AFFINITY_TIMEOUT_HELP = "with client-ip: forget a client after this long without a new connection, in seconds or e.g. 3h (default 10800)";

/** --lb-* flags, the same on create and update: how the service's VIP balances. */
function addLbOptions(cmd: Command): Command {
  return cmd
    .addOption(choice("--lb-scheduler <scheduler>", LB_SCHEDULER_HELP, LB_SCHEDULER_NAMES))
    .option("--lb-weight <slot=weight>", LB_WEIGHT_HELP, collectKeyValue)
    .addOption(choice("--lb-affinity <affinity>", LB_AFFINITY_HELP, LB_AFFINITIES))
    .option("--lb-affinity-timeout <seconds>", LB_AFFINITY_TIMEOUT_HELP, seconds);
}

/** --lb-weight SLOT=W pairs as numbers; the manager checks their ranges. */
function weights(pairs: Record<string, string> | undefined): Record<string, number> | undefined {
  if (!pairs) return undefined;
  const out: Record<string, number> = {};
  for (const [slot, w] of Object.entries(pairs)) {
    if (!/^\d+$/.test(w)) throw new UsageError(`--lb-weight ${slot}=${w}: the weight must be a whole number`);
    out[slot] = Number(w);
  }
  return out;
}

interface UpdateOptions extends UpdateConfigOptions, WaitOptions, ConfinementOptions, RestartPolicyOptions {
  image?: string;
  entrypoint?: string;
  workdir?: string;
  hostname?: string;
  containerLabelAdd?: Record<string, string>;
  containerLabelRm?: string[];
  networkAdd?: string[];
  networkRm?: string[];
  lbScheduler?: LbSchedulerName;
  lbWeight?: Record<string, string>;
  lbAffinity?: LbAffinity;
  lbAffinityTimeout?: number;
  replicas?: number;
  envAdd?: string[];
  envRm?: string[];
  labelAdd?: Record<string, string>;
  labelRm?: string[];
  publishAdd?: string[];
  publishRm?: string[];
  endpointMode?: EndpointMode;
  constraintAdd?: string[];
  constraintRm?: string[];
  force?: boolean;
  args?: string;
}

const ENDPOINT_MODE_HELP = "vip (one virtual IP, load-balanced) or dnsrr (DNS round robin)";
const CONSTRAINT_HELP = "placement constraint, e.g. node.labels.zone==a (repeatable)";
const NETWORK_HELP = "attach to a network: NAME, or name=NAME,alias=ALIAS[,alias=…] for more names in its DNS (repeatable)";
const IMAGE_HELP = "the image the tasks run, as containers (vipmesh/whoami runs as a host process)";
const ENTRYPOINT_HELP = 'with --image: replace the image\'s ENTRYPOINT, e.g. --entrypoint "/bin/sh -c"';
const WORKDIR_HELP = "the tasks' working directory, an absolute path (default: the image's)";
const HOSTNAME_HELP = "the tasks' host name (default: the task's short ID)";

/** --image, --entrypoint, --workdir, --hostname and docker's --restart-* flags, the same on create and update. */
function addContainerOptions(cmd: Command): Command {
  return addRestartPolicyOptions(
    cmd
      .option("--image <image>", IMAGE_HELP)
      .option("--entrypoint <command>", ENTRYPOINT_HELP)
      .option("-w, --workdir <dir>", WORKDIR_HELP)
      .option("--hostname <name>", HOSTNAME_HELP),
  );
}

export function registerServiceCommands(program: Command, io: Io): void {
  // Positional options here let `create` pass flags after the command through to it.
  const service = program.command("service").description("Manage services").enablePositionalOptions();

  const create = service
    .command("create")
    .description("Create a service")
    .usage("--name NAME [options] (--image IMAGE [--] [ARG...] | -- COMMAND [ARG...])")
    .argument("[command...]", "with --image: arguments that replace the image's CMD (docker's); without: the host command each task runs")
    .passThroughOptions()
    .requiredOption("--name <name>", "service name")
    .option("--replicas <n>", "number of tasks (default: 1)", wholeNumber)
    .addOption(choice("--mode <mode>", "replicated or global (one task per node)", ["replicated", "global"]))
    .option("--network <network>", NETWORK_HELP, collect)
    .addOption(choice("--endpoint-mode <mode>", ENDPOINT_MODE_HELP, ENDPOINT_MODES))
    .option("-p, --publish <spec>", "publish a port: [PUBLISHED:]TARGET[/PROTO] or published=P,target=T,...", collect)
    .option("--label <key=value>", "service label (repeatable)", collectKeyValue)
    .option("--container-label <key=value>", "container label (repeatable)", collectKeyValue)
    .option("--constraint <expr>", CONSTRAINT_HELP, collect)
    .option("-e, --env <key=value>", "environment variable (repeatable)", collect)
    .option("--health-cmd <command>", "command run inside the task to check its health (exit 0 = healthy)")
    .option("--health-interval <duration>", "time between health checks (default 30s)", duration)
    .option("--health-timeout <duration>", "a check running longer fails (default 30s)", duration)
    .option("--health-retries <n>", "failures in a row that make a task unhealthy (default 3)", wholeNumber)
    .option("--health-start-period <duration>", "failures during this time after start do not count", duration);
  addWaitOptions(addUpdateConfigOptions(addUpdateConfigOptions(addLbOptions(addConfinementOptions(addContainerOptions(create), "create")), "update"), "rollback")).action(async (command: string[], opts: CreateOptions, cmd) => {
    const spec = buildServiceSpec({
      name: opts.name,
      replicas: opts.replicas,
      mode: opts.mode,
      networks: opts.network ?? [],
      endpointMode: opts.endpointMode,
      publish: opts.publish ?? [],
      labels: opts.label ?? {},
      constraints: opts.constraint ?? [],
      env: opts.env ?? [],
      user: opts.user,
      capAdd: opts.capAdd ?? [],
      capDrop: opts.capDrop ?? [],
      limits: limitsFrom(opts),
      reservations: reservationsFrom(opts),
      lbScheduler: opts.lbScheduler,
      lbWeights: weights(opts.lbWeight),
      lbAffinity: opts.lbAffinity,
      lbAffinityTimeoutS: opts.lbAffinityTimeout,
      ...(opts.healthCmd
        ? {
            healthcheck: {
              test: [opts.healthCmd],
              intervalMs: opts.healthInterval ?? 0,
              timeoutMs: opts.healthTimeout ?? 0,
              retries: opts.healthRetries ?? 0,
              startPeriodMs: opts.healthStartPeriod ?? 0,
            },
          }
        : {}),
      updateConfig: updateConfigFrom(opts, "update"),
      rollbackConfig: updateConfigFrom(opts, "rollback"),
      image: opts.image,
      command,
      entrypoint: opts.entrypoint === undefined ? undefined : shellWords("--entrypoint", opts.entrypoint),
      workdir: opts.workdir,
      hostname: opts.hostname,
      containerLabels: opts.containerLabel ?? {},
      restartPolicy: restartPolicyFrom(opts),
    });
    await withManager(io, cmd, async (conn) => {
      const { service: created } = await conn.call("createService", { spec });
      const id = created?.id ?? spec.annotations.name;
      io.stdout(`${id}\n`);
      await waitUnlessDetached(conn, io, opts, { service: id, label: spec.annotations.name });
    });
  });

  addListOptions(service.command("ls").alias("list").description("List services")).action(
    async (opts: ListOptions, cmd: Command) => {
      const [{ services }, { tasks }] = await withManager(io, cmd, (conn) =>
        Promise.all([conn.call("listServices", {}), conn.call("listTasks", {})]),
      );
      printList(io, opts, services, {
        json: serviceJson,
        headers: SERVICE_HEADERS,
        rows: (items) => serviceRows(items, tasks),
      });
    },
  );

  service
    .command("inspect")
    .description("Show services as JSON")
    .argument("<service...>", "ID, ID prefix or name")
    .option("--json", "print JSON (the default)")
    .action(async (targets: string[], _opts: unknown, cmd: Command) => {
      const found: unknown[] = [];
      await withManager(io, cmd, (conn) =>
        forEachTarget(targets, io.stderr, async (target) => {
          const { service: s } = await conn.call("inspectService", { service: target });
          if (s) found.push(serviceJson(s));
        }).finally(() => printJson(io, found)),
      );
    });

  service
    .command("ps")
    .description("List the tasks of services")
    .argument("<service...>", "ID, ID prefix or name")
    .option("--json", "print one JSON array")
    .option("-q, --quiet", "print task IDs only")
    .action(async (targets: string[], opts: ListOptions, cmd: Command) => {
      await withManager(io, cmd, async (conn) => {
        const tasks: wire.Task[] = [];
        const [{ nodes }, { networks }] = await Promise.all([
          conn.call("listNodes", {}),
          conn.call("listNetworks", {}),
        ]);
        await forEachTarget(targets, io.stderr, async (target) => {
          tasks.push(...(await conn.call("listTasks", { service: target })).tasks);
        }).finally(() => {
          const networkNames = new Map(networks.map((n) => [n.id, n.spec?.name ?? ""]));
          const hostnames = new Map(nodes.map((n) => [n.id, n.description?.hostname ?? ""]));
          printList(io, opts, tasks, {
            json: (t) => taskJson(t, networkNames),
            headers: TASK_HEADERS,
            rows: (items) => taskRows(items, hostnames, io.now()),
          });
        });
      });
    });

  service
    .command("logs")
    .description("Show the output of a service's tasks")
    .argument("<service>", "ID, ID prefix or name")
    .option("-f, --follow", "keep printing new output until Ctrl-C (or until no task can print more)")
    .option("--tail <n>", 'only the last N lines of each task, or "all"', tailLines)
    .option("-t, --timestamps", "show when each line was logged")
    .option("--since <time>", "only lines logged since: a duration before now (10m), unix seconds or RFC 3339", (v: string) => parseSinceFlag(v))
    .action(async (target: string, opts: { follow?: boolean; tail?: number; timestamps?: boolean; since?: string }, cmd: Command) => {
      await withManager(io, cmd, (conn) =>
        printServiceLogs(conn, io, target, { follow: opts.follow === true, tail: opts.tail ?? 0, timestamps: opts.timestamps === true, since: opts.since ?? "" }),
      );
    });

  addWaitOptions(
    service
      .command("scale")
      .description("Set the number of tasks of replicated services")
      .argument("<service=replicas...>", "e.g. web=3"),
  ).action(async (pairs: string[], opts: WaitOptions, cmd: Command) => {
    const targets = pairs.map(parseScale);
    await withManager(io, cmd, async (conn) => {
      const scaled: string[] = [];
      await forEachTarget(targets, io.stderr, async ({ service: name, replicas }) => {
        await updateService(conn, name, (spec) => applyServiceUpdate(spec, { replicas }));
        io.stdout(`${name} scaled to ${replicas}\n`);
        scaled.push(name);
      }).finally(async () => {
        for (const name of scaled) await waitUnlessDetached(conn, io, opts, { service: name, label: name });
      });
    });
  });

  const update = service
    .command("update")
    .description("Change a service's spec (a rolling update when the tasks change)")
    .argument("<service>", "ID, ID prefix or name")
    .option("--replicas <n>", "number of tasks", wholeNumber)
    .option("--env-add <key=value>", "add or replace an environment variable (repeatable)", collect)
    .option("--env-rm <key>", "remove an environment variable (repeatable)", collect)
    .option("--label-add <key=value>", "add or replace a label (repeatable)", collectKeyValue)
    .option("--label-rm <key>", "remove a label (repeatable)", collect)
    .option("--container-label-add <key=value>", "add or replace a container label (repeatable)", collectKeyValue)
    .option("--container-label-rm <key>", "remove a container label (repeatable)", collect)
    .option("--network-add <network>", `${NETWORK_HELP}; to change a network's aliases, --network-rm it too`, collect)
    .option("--network-rm <network>", "detach from a network, by name or ID (repeatable)", collect)
    .option("--publish-add <spec>", "publish a port, as --publish of create (repeatable)", collect)
    .option("--publish-rm <target[/proto]>", "stop publishing a target port (repeatable)", collect)
    .addOption(choice("--endpoint-mode <mode>", ENDPOINT_MODE_HELP, ENDPOINT_MODES))
    .option("--constraint-add <expr>", CONSTRAINT_HELP, collect)
    .option("--constraint-rm <expr>", "remove a placement constraint (repeatable)", collect)
    .option("--force", "replace the tasks even if nothing changed")
    .option(
      "--args <words>",
      'replace the words after the flags of create: for a service with an image, its CMD (its --entrypoint kept; "" = the image\'s CMD again, and --entrypoint "" its ENTRYPOINT), else the host command, e.g. --args "vipmesh whoami --port 8080"; a service given an image it had not runs its host command as the image\'s CMD',
    );
  addWaitOptions(addUpdateConfigOptions(addUpdateConfigOptions(addLbOptions(addConfinementOptions(addContainerOptions(update), "update")), "update"), "rollback")).action(async (name: string, opts: UpdateOptions, cmd: Command) => {
    const args = opts.args === undefined ? undefined : shellWords("--args", opts.args);
    const entrypoint = opts.entrypoint === undefined ? undefined : shellWords("--entrypoint", opts.entrypoint);
    const change: ServiceUpdate = {
      replicas: opts.replicas,
      envAdd: opts.envAdd ?? [],
      envRm: opts.envRm ?? [],
      labelAdd: opts.labelAdd ?? {},
      labelRm: opts.labelRm ?? [],
      portsAdd: (opts.publishAdd ?? []).map(parsePublish),
      portsRm: (opts.publishRm ?? []).map(parsePublishRm),
      endpointMode: opts.endpointMode,
      constraintAdd: opts.constraintAdd ?? [],
      constraintRm: opts.constraintRm ?? [],
      lbScheduler: opts.lbScheduler,
      lbWeights: weights(opts.lbWeight),
      lbAffinity: opts.lbAffinity,
      lbAffinityTimeoutS: opts.lbAffinityTimeout,
      updateConfig: updateConfigFrom(opts, "update"),
      rollbackConfig: updateConfigFrom(opts, "rollback"),
      force: opts.force === true,
      dir: opts.workdir,
      user: opts.user,
      capAdd: opts.capAdd ?? [],
      capDrop: opts.capDrop ?? [],
      limits: limitsFrom(opts),
      reservations: reservationsFrom(opts),
      image: opts.image,
      hostname: opts.hostname,
      containerLabelAdd: opts.containerLabelAdd ?? {},
      containerLabelRm: opts.containerLabelRm ?? [],
      restartPolicy: restartPolicyFrom(opts),
      networkAdd: (opts.networkAdd ?? []).map(parseNetworkAttachment),
    };
    await withManager(io, cmd, async (conn) => {
      const networkRm = await networkIds(conn, opts.networkRm ?? []);
      const updated = await updateService(conn, name, (spec) =>
        applyServiceUpdate(spec, { ...change, networkRm, ...commandUpdate(spec, { image: opts.image, entrypoint, args }) }),
      );
      io.stdout(`${name}\n`);
      await waitUnlessDetached(conn, io, opts, { service: updated?.id ?? name, label: name });
    });
  });

  addWaitOptions(
    service
      .command("rollback")
      .description("Go back to the service's previous spec")
      .argument("<service>", "ID, ID prefix or name"),
  ).action(async (name: string, opts: WaitOptions, cmd: Command) => {
    await withManager(io, cmd, async (conn) => {
      await conn.call("rollbackService", { service: name });
      io.stdout(`${name}\n`);
      await waitUnlessDetached(conn, io, opts, { service: name, label: name });
    });
  });

  service
    .command("rm")
    .alias("remove")
    .description("Remove services")
    .argument("<service...>", "ID, ID prefix or name")
    .action(async (targets: string[], _opts: unknown, cmd: Command) => {
      await withManager(io, cmd, (conn) =>
        forEachTarget(targets, io.stderr, async (target) => {
          await conn.call("removeService", { service: target });
          io.stdout(`${target}\n`);
        }),
      );
    });
}

function waitUnlessDetached(
  conn: ManagerConnection,
  io: Io,
  opts: WaitOptions,
  wait: Omit<ConvergenceWait, "timeoutMs">,
): Promise<void> {
  if (opts.detach) return Promise.resolve();
  return waitForConvergence(conn, io, { ...wait, timeoutMs: opts.timeout });
}

/** `--network-rm` names, IDs or prefixes as the spec holds them, IDs, as Docker's CLI resolves them; an unknown one is an error. */
async function networkIds(conn: ManagerConnection, refs: readonly string[]): Promise<string[]> {
  return Promise.all(refs.map(async (ref) => (await conn.call("inspectNetwork", { network: ref })).network?.id ?? ref));
}

/** Read, modify, write: the manager refuses the write if the service changed since the read. */
async function updateService(
  conn: ManagerConnection,
  target: string,
  modify: (spec: ServiceSpec) => ServiceSpec,
): Promise<wire.Service | null> {
  const { service: current } = await conn.call("inspectService", { service: target });
  if (!current?.spec) throw new CommandFailed(`the manager returned service ${target} without a spec`);
  const spec = modify(specFromWire(current.spec));
  const request = { service: current.id, version: current.version, spec };
  return (await conn.call("updateService", request)).service;
}
