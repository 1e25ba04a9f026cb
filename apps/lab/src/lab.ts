// The lab: a whole cluster on one machine. A fabric namespace holds the
// underlay bridge and the manager; each node is a namespace joined to it by a
// veth, running a real agent; a `client` namespace sits on the underlay too.
// Everything it makes carries the lab's prefix and is recorded under
// /run/vipmesh/<lab>/, so `lab down` removes all of it, also after a crash.
// Each agent runs under a supervisor (supervisor.ts) that restarts it when it
// ends on its own, as systemd does on a real host; `lab node stop` and `lab
// down` stop the supervisor first, so nothing comes back. Each node also runs
// a containerd of its own, in its namespace, with its root, state and socket
// under the node's containerd-<node>/ (so nodes stay separate, and a pull has
// no route off the machine); it outlives its agent's restarts, as on a host.
// Nothing here touches the root namespace's interfaces, routes or firewall.

import { call, clusterClient, type ClusterServiceClient, credentialsFromDir, waitFor } from "@vipmesh/api";
import { alreadyExists, invalid, notFound, precondition } from "@vipmesh/core";
import { shimsOf, unmountUnder } from "@vipmesh/containerd/host";
import { execFileSync } from "node:child_process";
import { type Dirent, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { DOCKER_TLS_PORT, ip, ipBatches, listNamespaces, MANAGER_PORT, namespacePids, POLL_MS, sleepSync, startDetached, UNDERLAY, VIPMESH } from "./host.ts";
import { etcdMemberPid, labManagerPid, launchManager, type LabEtcd, type LabManager, MANAGER_SOCKET, managersLayout, startEtcdCluster, startManagers } from "./managers.ts";
import { killPidFile, livePid, signalGroup, writePidFile } from "./pid-file.ts";

export { listNamespaces, namespacePids } from "./host.ts";

export const RUN_DIR = "/run/vipmesh";
export const DEFAULT_LAB = "lab";
const SUPERVISOR = fileURLToPath(new URL("./supervisor.ts", import.meta.url));
// by path, as bin/vipmesh loads it: `--import tsx` would be resolved from the caller's directory
const TSX_LOADER = fileURLToPath(new URL("../../../node_modules/tsx/dist/loader.mjs", import.meta.url));
/** The containerd namespace the agents keep their images and containers in. */
export const CONTAINERD_NAMESPACE = "vipmesh";

export interface LabOptions {
  name: string;
  nodes: number;
  /** Managers on etcd, m1…mN, one etcd member beside each (default none: one manager on SQLite). */
  managers?: number;
  heartbeatMs?: number;
  dataplane?: string;
  /** How often the manager rotates the encrypted overlays' key (default: the manager's, 12 h). */
  keyRotationMs?: number;
  /** One containerd per node, for tasks with an image (default true; false: process tasks only). */
  containerd?: boolean;
  /** What every node says it has, for `--reserve-*` (default: what the agent finds on this machine). */
  nodeResources?: NodeResources;
  /** Per node (by hostname), over `nodeResources`. */
  resourcesByNode?: Record<string, NodeResources>;
  log?: (line: string) => void;
}

/** A node's capacity as its agent states it: `--cpus` (nano CPUs, Docker's unit) and `--memory` (bytes). */
export interface NodeResources {
  nanoCpus?: number;
  memoryBytes?: number;
}

/** A lab node. */
export interface LabNode {
  hostname: string;
  netns: string;
  addr: string;
  stateDir: string;
  /** Its containerd's socket, when the lab runs one per node. */
  containerdSocket?: string;
  resources?: NodeResources;
}

export interface LabLayout {
  name: string;
  dir: string;
  socket: string;
  /** The manager's Docker Engine API on a unix socket (DOCKER_HOST=unix://…), for the docker CLI on this machine. */
  dockerSocket: string;
  /** The Engine API over mutual TLS, ADDR:PORT on the underlay: reachable from the lab's namespaces only. */
  dockerTcp: string;
  /** The manager's admin identity: what the CLI and the lab's own calls use (ca.pem, cert.pem, key.pem: DOCKER_CERT_PATH too). */
  tlsDir: string;
  /** The manager's read-only identity: for watchers such as haproxy-gen. */
  readonlyTlsDir: string;
  /** A 0600 file holding the worker join token agents join with (kept so that a node started later can join too). */
  tokenFile?: string;
  prefix: string;
  fabric: string;
  client: string;
  managerAddr: string;
  heartbeatMs?: number;
  dataplane?: string;
  keyRotationMs?: number;
  nodes: LabNode[];
  /** Managers on etcd, each with an etcd member beside it; absent: the single SQLite manager above, in the fabric namespace (the fields above then name m1's). */
  managers?: LabManager[];
  etcd?: LabEtcd;
}

/** The lab's layout: with `managers` (≥ 1), that many managers on etcd. */
export function layout(name: string, nodes: number, managers = 0): LabLayout {
  if (!/^[a-z][a-z0-9-]{0,15}$/.test(name)) {
    throw invalid(`lab name "${name}" must be 1-16 lowercase letters, digits or '-', starting with a letter`);
  }
  const prefix = `vm-${name}-`;
  const dir = join(RUN_DIR, name);
  const l: LabLayout = {
    name,
    dir,
    socket: join(dir, "manager.sock"),
    dockerSocket: join(dir, "docker.sock"),
    dockerTcp: `${UNDERLAY}.1:${DOCKER_TLS_PORT}`,
    tlsDir: join(dir, "manager", "admin"),
    readonlyTlsDir: join(dir, "manager", "readonly"),
    prefix,
    fabric: `${prefix}fabric`,
    client: `${prefix}client`,
    managerAddr: `${UNDERLAY}.1:${MANAGER_PORT}`,
    nodes: Array.from({ length: nodes }, (_, i) => ({
      hostname: `node${i + 1}`,
      netns: `${prefix}node${i + 1}`,
      addr: `${UNDERLAY}.${11 + i}`,
      stateDir: join(dir, `node${i + 1}`),
    })),
  };
  if (managers === 0) return l;
  // the lab's calls go to m1; its users' identities are the lab's, as every manager trusts them
  const ha = managersLayout(dir, prefix, managers);
  const m1 = ha.managers[0]!;
  return { ...l, ...ha, socket: m1.socket, dockerSocket: m1.dockerSocket, dockerTcp: m1.dockerTcp, managerAddr: m1.listen, tlsDir: join(dir, "admin"), readonlyTlsDir: join(dir, "readonly") };
}

/** What agents dial: the manager, or every manager on etcd. */
const agentManagers = (l: LabLayout): string => (l.managers ? l.managers.map((m) => m.listen).join(",") : l.managerAddr);

/** How to reach a lab's managers: a socket, every manager's, and the admin identity to present. */
export interface LabEndpoint {
  /** The manager's socket; with managers on etcd, the first that listens. */
  socket: string;
  /** Every manager's socket that is there, m1 first (one, for the single manager): any of them answers. */
  managerSockets: string[];
  tlsDir: string;
  readonlyTlsDir: string;
}

/** The labs that run now, by name: those with a manager's socket. */
export function runningLabs(): Map<string, LabEndpoint> {
  const labs = new Map<string, LabEndpoint>();
  if (!existsSync(RUN_DIR)) return labs;
  for (const name of readdirSync(RUN_DIR)) {
    if (!/^[a-z][a-z0-9-]{0,15}$/.test(name)) continue;
    const single = layout(name, 0);
    if (existsSync(single.socket)) {
      labs.set(name, { socket: single.socket, managerSockets: [single.socket], tlsDir: single.tlsDir, readonlyTlsDir: single.readonlyTlsDir });
      continue;
    }
    // managers on etcd: m1.sock, m2.sock, … (a stopped manager's is removed)
    const numbers = readdirSync(single.dir)
      .map((f) => MANAGER_SOCKET.exec(f)?.[1])
      .filter((n): n is string => n !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
    if (numbers.length === 0) continue;
    const { tlsDir, readonlyTlsDir } = layout(name, 0, 1);
    const managerSockets = numbers.map((n) => join(single.dir, `m${n}.sock`));
    labs.set(name, { socket: managerSockets[0]!, managerSockets, tlsDir, readonlyTlsDir });
  }
  return labs;
}

/** A client of the lab's cluster API, as its admin. */
export const labClient = (l: Pick<LabLayout, "socket" | "tlsDir">): ClusterServiceClient => clusterClient(l.socket, credentialsFromDir(l.tlsDir));

export async function labUp(o: LabOptions): Promise<LabLayout> {
  const log = o.log ?? (() => {});
  const l = layout(o.name, o.nodes, o.managers ?? 0);
  if (existsSync(l.socket) || listNamespaces().some((n) => n.startsWith(l.prefix))) {
    throw alreadyExists(`lab ${l.name} already exists; run 'vipmesh lab down --name ${l.name}' first`);
  }
  const unknown = Object.keys(o.resourcesByNode ?? {}).filter((h) => !l.nodes.some((n) => n.hostname === h));
  if (unknown.length > 0) throw invalid(`lab ${l.name} would have no node ${unknown.join(", ")} (nodes: ${l.nodes.map((n) => n.hostname).join(", ")})`);
  for (const n of l.nodes) {
    const resources = { ...o.nodeResources, ...o.resourcesByNode?.[n.hostname] };
    if (Object.keys(resources).length > 0) n.resources = resources;
  }
  mkdirSync(l.dir, { recursive: true, mode: 0o700 });
  try {
    log(`underlay ${UNDERLAY}.0/24 in ${l.fabric}`);
    const hosts = [...(l.managers ?? []), ...l.nodes, { netns: l.client, addr: `${UNDERLAY}.100` }].map(({ netns, addr }) => ({ netns, addr }));
    for (const ns of [l.fabric, ...hosts.map((h) => h.netns)]) ip("netns", "add", ns);
    const fabric = ["link add br0 type bridge", `addr add ${UNDERLAY}.1/24 dev br0`, "link set br0 up", "link set lo up"];
    hosts.forEach((h, i) => fabric.push(`link add u${i} type veth peer name eth0 netns ${h.netns}`, `link set u${i} master br0 up`));
    ipBatches([
      [l.fabric, fabric],
      ...hosts.map((h): [string, string[]] => [h.netns, [`addr add ${h.addr}/24 dev eth0`, "link set eth0 up", "link set lo up"]]),
    ]);
    for (const h of hosts) execFileSync("ip", ["netns", "exec", h.netns, "sysctl", "-qw", "net.ipv4.ip_forward=1"]);

    if (o.containerd !== false) {
      log(`${l.nodes.length} containerd, one in each node's namespace`);
      await Promise.all(l.nodes.map((n) => startNodeContainerd(l, n)));
    }

    if (o.heartbeatMs) l.heartbeatMs = o.heartbeatMs;
    if (o.dataplane) l.dataplane = o.dataplane;
    if (o.keyRotationMs) l.keyRotationMs = o.keyRotationMs;
    if (l.managers) {
      await startEtcdCluster(l, log);
      log(`${l.managers.length} managers on etcd`);
      await startManagers(l);
    } else {
      log("manager");
      await startManager(l);
    }
    const client = labClient(l);
    try {
      const { token } = await call(client, "getJoinToken", { role: "worker" }, { deadline: Date.now() + 5000 });
      l.tokenFile = join(l.dir, "join-token");
      writeFileSync(l.tokenFile, `${token}\n`, { mode: 0o600 });
      for (const n of l.nodes) startAgent(l, n.hostname);
      log(`${l.nodes.length} agents`);
      await waitFor(
        `${l.nodes.length} ready nodes`,
        async () => {
          const { nodes } = await call(client, "listNodes", {}, { deadline: Date.now() + 2000 });
          return nodes.filter((n) => n.status?.state === "ready").length === l.nodes.length;
        },
        // as for the manager: a slow machine (the kernel VM emulates one) gets time to load the agents
        120_000,
        POLL_MS,
      );
    } finally {
      client.close();
    }
    writeFileSync(join(l.dir, "lab.json"), JSON.stringify(l, null, 2), { mode: 0o600 });
    return l;
  } catch (err) {
    const logs = logTails(l.dir);
    labDown(o.name);
    throw new Error(`${err instanceof Error ? err.message : String(err)}${logs}`);
  }
}

/** The last lines of each process log of a lab, for an error that is about to remove them. */
function logTails(dir: string): string {
  if (!existsSync(dir)) return "";
  return readdirSync(dir)
    .filter((f) => f.endsWith(".log"))
    .map((f) => {
      const lines = readFileSync(join(dir, f), "utf8").trim().split("\n").slice(-5);
      return `\n--- ${f}\n${lines.join("\n")}`;
    })
    .join("");
}

const containerdDir = (l: LabLayout, hostname: string) => join(l.dir, `containerd-${hostname}`);
const containerdPidFile = (l: LabLayout, hostname: string) => join(l.dir, `containerd-${hostname}.pid`);

/** Starts the node's containerd in its namespace (its root, state and socket under containerd-<node>/); its pid to a pid file. */
async function startNodeContainerd(l: LabLayout, n: LabNode): Promise<void> {
  // containerd's client only here: every `vipmesh` process reads the labs (runningLabs) and needs none of it
  const { startContainerd } = await import("@vipmesh/containerd");
  const daemon = await startContainerd({ dir: containerdDir(l, n.hostname), netns: n.netns, log: join(l.dir, `containerd-${n.hostname}.log`) });
  writePidFile(containerdPidFile(l, n.hostname), daemon.pid);
  n.containerdSocket = daemon.socket;
}

/** The pid of the node's containerd while it runs. */
export const containerdPid = (l: LabLayout, hostname: string): number | undefined => livePid(containerdPidFile(l, hostname));

/**
 * What the lab's containerds leave once their processes are killed (labDown
 * killed them, their shims and containers with the namespaces): the
 * containers' rootfs mounts under the lab's dir, and outside it each shim's
 * socket (/run/containerd/s/…, named in its bundle's `address` file) and
 * runc's state (/run/containerd/runc/<namespace>/<id>).
 */
function removeContainerdLeftovers(dir: string): void {
  for (const node of existsSync(dir) ? readdirSync(dir) : []) {
    // shims a lost namespace did not take with it (they run in their node's)
    for (const shim of shimsOf(join(dir, node, "containerd.sock"))) {
      try {
        process.kill(shim, "SIGKILL");
      } catch {}
    }
    const tasks = join(dir, node, "state", "io.containerd.runtime.v2.task");
    for (const ns of existsSync(tasks) ? readdirSync(tasks) : []) {
      for (const id of readdirSync(join(tasks, ns))) {
        try {
          const address = readFileSync(join(tasks, ns, id, "address"), "utf8").trim();
          if (address.startsWith("unix:///run/containerd/s/")) rmSync(address.slice("unix://".length), { force: true });
        } catch {}
        rmSync(join("/run/containerd/runc", ns, id), { recursive: true, force: true });
      }
    }
  }
  unmountUnder(dir);
}

/** Starts the lab's manager in the fabric namespace (on its data dir: a restart keeps the cluster). */
export async function startManager(l: LabLayout): Promise<void> {
  const args = ["manager", "--data-dir", join(l.dir, "manager"), "--listen", l.managerAddr, "--listen", `unix:${l.socket}`];
  // Docker's Engine API: for the docker CLI on this machine, and with mutual TLS from the lab's namespaces
  args.push("--docker-api", `unix:${l.dockerSocket}`, "--docker-api", `tcp://${l.dockerTcp}`);
  const sockets = [l.socket, l.dockerSocket];
  await launchManager(l, { what: `manager of lab ${l.name}`, netns: l.fabric, pidFile: join(l.dir, "manager.pid"), logFile: join(l.dir, "manager.log"), sockets, args });
}

/** Kills the lab's manager (SIGKILL, like a crash); `startManager` brings it back on the same data dir. */
export function killManager(l: LabLayout): void {
  killPidFile(join(l.dir, "manager.pid"));
  for (const socket of [l.socket, l.dockerSocket]) rmSync(socket, { force: true });
}

/** Whether the lab's manager runs. */
export const managerRuns = (l: LabLayout): boolean => livePid(join(l.dir, "manager.pid")) !== undefined;

/** The lab's processes, for `lab status`: each with its pid while it runs. */
export function labProcesses(l: LabLayout): { what: string; pid: number | undefined }[] {
  const managers = l.managers
    ? l.managers.flatMap((m) => [
        { what: `manager ${m.name}`, pid: labManagerPid(l, m.name) },
        { what: `etcd ${m.name}`, pid: etcdMemberPid(l, m.name) },
      ])
    : [{ what: "manager", pid: livePid(join(l.dir, "manager.pid")) }];
  const nodes = l.nodes.flatMap((n) => [
    { what: `agent ${n.hostname}`, pid: agentPid(l, n.hostname) },
    ...(n.containerdSocket ? [{ what: `containerd ${n.hostname}`, pid: containerdPid(l, n.hostname) }] : []),
  ]);
  return [...managers, ...nodes];
}

const supervisorPidFile = (l: LabLayout, hostname: string) => join(l.dir, `supervisor-${hostname}.pid`);
const agentPidFile = (l: LabLayout, hostname: string) => join(l.dir, `agent-${hostname}.pid`);

function nodeOf(l: LabLayout, hostname: string): LabNode {
  const n = l.nodes.find((x) => x.hostname === hostname);
  if (!n) throw notFound(`lab ${l.name} has no node ${hostname} (nodes: ${l.nodes.map((x) => x.hostname).join(", ")})`);
  return n;
}

/** The pid of the node's running agent, checked against its start time; undefined while it is down. */
export const agentPid = (l: LabLayout, hostname: string): number | undefined => livePid(agentPidFile(l, hostname));
/** The pid of the node's running supervisor, checked the same way. */
export const supervisorPid = (l: LabLayout, hostname: string): number | undefined => livePid(supervisorPidFile(l, hostname));

/**
 * The node's agent and supervisor processes, found by what they run rather than
 * by pid files: in the node's namespace, with the node's state dir on their
 * command line (the supervisor's holds the agent's).
 */
export function nodeProcesses(l: LabLayout, hostname: string): { supervisors: number[]; agents: number[] } {
  const n = nodeOf(l, hostname);
  const found = { supervisors: [] as number[], agents: [] as number[] };
  let pids: number[] = [];
  try {
    pids = namespacePids(n.netns);
  } catch {}
  const read = (file: string) => {
    try {
      return readFileSync(file, "utf8");
    } catch {
      return "";
    }
  };
  for (const pid of pids) {
    const cmdline = read(`/proc/${pid}/cmdline`);
    // a child an agent (or supervisor) forked shows its parent's command line until it execs: not another one
    const stat = read(`/proc/${pid}/stat`);
    const ppid = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1];
    if (!cmdline || read(`/proc/${ppid}/cmdline`) === cmdline) continue;
    const argv = cmdline.split("\0");
    const at = argv.indexOf("--state-dir");
    if (at < 0 || argv[at + 1] !== n.stateDir) continue;
    (argv.includes(SUPERVISOR) ? found.supervisors : found.agents).push(pid);
  }
  return found;
}

/** SIGKILLs whatever runs of the node's agent: supervisors first, so that none restarts an agent. */
function killNodeProcesses(l: LabLayout, hostname: string): void {
  killPidFile(supervisorPidFile(l, hostname));
  killPidFile(agentPidFile(l, hostname));
  // and any the pid files do not name (a supervisor killed before it wrote its agent's)
  const { supervisors, agents } = nodeProcesses(l, hostname);
  for (const pid of [...supervisors, ...agents]) signalGroup(pid, "SIGKILL");
}

/**
 * Makes sure the node's agent runs under its supervisor: does nothing while
 * the node's supervisor runs (it restarts a crashed agent by itself), else
 * starts one, whatever pid files a crash or a stop left behind.
 */
export function startAgent(l: LabLayout, hostname: string): void {
  const n = nodeOf(l, hostname);
  if (supervisorPid(l, hostname) !== undefined) return;
  // no supervisor of ours: an agent it left running (the supervisor was killed) goes, so that one runs per node
  killNodeProcesses(l, hostname);
  mkdirSync(n.stateDir, { recursive: true });
  const args = ["agent", "--manager", agentManagers(l), "--advertise-addr", n.addr, "--hostname", n.hostname];
  // nothing outside the lab is reachable from it: names outside the cluster fail at once
  args.push("--state-dir", n.stateDir, "--sandbox-prefix", `${n.netns}-`, "--cgroup-parent", n.netns, "--dns-upstream", "none");
  if (l.dataplane) args.push("--dataplane", l.dataplane);
  // without a containerd of the lab's, a socket that is not there: the node runs process tasks only (not this machine's containerd)
  args.push("--containerd-socket", n.containerdSocket ?? join(n.stateDir, "no-containerd.sock"), "--containerd-namespace", CONTAINERD_NAMESPACE);
  if (n.resources?.nanoCpus !== undefined) args.push("--cpus", String(n.resources.nanoCpus / 1e9));
  if (n.resources?.memoryBytes !== undefined) args.push("--memory", String(n.resources.memoryBytes));
  // the join token from its 0600 file: never in the agent's command line or environment, which
  // /proc shows; a node that has joined keeps its certificate in its state dir and does not use it again
  if (l.tokenFile) args.push("--token-file", l.tokenFile);
  // the agent's output and the supervisor's restarts go to agent-<node>.log
  startDetached(join(l.dir, `agent-${hostname}.log`), supervisorPidFile(l, hostname), n.netns, [
    process.execPath,
    "--import",
    TSX_LOADER,
    SUPERVISOR,
    "--pid-file",
    agentPidFile(l, hostname),
    "--",
    VIPMESH,
    ...args,
  ]);
}

/**
 * Where the docker CLI finds the lab's Engine API: its unix socket, or (`tls`)
 * the manager's underlay address with mutual TLS as the admin, whose identity
 * dir holds Docker's ca.pem, cert.pem and key.pem (DOCKER_CERT_PATH). The
 * underlay exists only in the lab's namespaces: run docker there (`ip netns exec <client>`).
 */
export function dockerTarget(l: Pick<LabLayout, "dockerSocket" | "dockerTcp" | "tlsDir">, tls = false): { host: string; certDir?: string } {
  return tls ? { host: `tcp://${l.dockerTcp}`, certDir: l.tlsDir } : { host: `unix://${l.dockerSocket}` };
}

/** Reads a running lab's layout. */
export function readLab(name: string): LabLayout {
  try {
    return JSON.parse(readFileSync(join(RUN_DIR, name, "lab.json"), "utf8")) as LabLayout;
  } catch {
    throw notFound(`lab ${name} is not running ('vipmesh lab up --name ${name}' starts it)`);
  }
}

/** Removes every namespace, process and file of the lab, whatever state it is in. */
export function labDown(name: string): void {
  const l = layout(name, 0);
  if (existsSync(l.dir)) {
    // supervisors first, so that none restarts the agents killed next; then the rest (the manager, the containerds)
    const pidFiles = readdirSync(l.dir).filter((f) => f.endsWith(".pid"));
    const rank = (f: string) => (f.startsWith("supervisor-") ? 0 : f.startsWith("agent-") ? 1 : 2);
    for (const f of pidFiles.sort((a, b) => rank(a) - rank(b))) killPidFile(join(l.dir, f));
  }
  for (const ns of listNamespaces().filter((n) => n.startsWith(l.prefix))) {
    // task processes live in the sandboxes; anything left in a namespace goes with it (supervisors
    // first again, for one whose pid file was lost; and once more for anything started meanwhile)
    for (let round = 0; round < 3; round++) {
      const pids = namespacePids(ns);
      if (pids.length === 0) break;
      const supervisor = (pid: number) => {
        try {
          return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").includes(SUPERVISOR);
        } catch {
          return false;
        }
      };
      for (const pid of [...pids.filter(supervisor), ...pids.filter((p) => !supervisor(p))]) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {}
      }
      sleepSync(20);
    }
    try {
      ip("netns", "del", ns);
    } catch {}
  }
  for (const node of existsSync(l.dir) ? readdirSync(l.dir) : []) removeTaskCgroups(join(l.dir, node, "cgroups"));
  removeContainerdLeftovers(l.dir);
  removeCgroupsNamed(l.prefix);
  rmSync(l.dir, { recursive: true, force: true });
  // the agents' per-sandbox hosts and resolv.conf (ip netns exec's /etc/netns/NAME)
  if (existsSync(NETNS_ETC)) {
    for (const f of readdirSync(NETNS_ETC)) if (f.startsWith(l.prefix)) rmSync(join(NETNS_ETC, f), { recursive: true, force: true });
  }
}

const NETNS_ETC = "/etc/netns";

/**
 * Removes the task cgroups an agent made, under the parents it listed in its
 * state dir (`cgroups`, apps/agent/src/tasks/cgroups.ts), then the parents.
 * A cgroup empties as its last process is reaped: a few tries.
 */
function removeTaskCgroups(record: string): void {
  if (!existsSync(record)) return;
  for (const parent of new Set(readFileSync(record, "utf8").split("\n").filter(Boolean))) {
    for (let attempt = 0; existsSync(parent) && attempt < 50; attempt++) {
      try {
        for (const child of readdirSync(parent, { withFileTypes: true })) if (child.isDirectory()) rmdirSync(join(parent, child.name));
        rmdirSync(parent);
      } catch {
        sleepSync(20);
      }
    }
  }
}

const CGROUP_ROOT = "/sys/fs/cgroup";
/** How deep under each hierarchy a node's cgroup parent is looked for (it sits under the agent's own cgroup). */
const CGROUP_DEPTH = 4;

/**
 * Removes every cgroup named after the lab (`<prefix>…`: the nodes' cgroup
 * parents) in every hierarchy, with what is under them: runc makes a
 * container's cgroup, and its node's parent, in each hierarchy of cgroup v1,
 * beyond the ones the agent lists; after a crash no one deleted them.
 */
function removeCgroupsNamed(prefix: string): void {
  const found: string[] = [];
  const walk = (dir: string, depth: number): void => {
    let entries: Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      if (e.name.startsWith(prefix)) found.push(join(dir, e.name));
      else if (depth > 0) walk(join(dir, e.name), depth - 1);
    }
  };
  walk(CGROUP_ROOT, CGROUP_DEPTH);
  const removeTree = (dir: string): void => {
    for (const child of readdirSync(dir, { withFileTypes: true })) if (child.isDirectory()) removeTree(join(dir, child.name));
    rmdirSync(dir);
  };
  for (const cgroup of found) {
    // a cgroup empties as its last process is reaped: a few tries
    for (let attempt = 0; existsSync(cgroup) && attempt < 50; attempt++) {
      try {
        removeTree(cgroup);
      } catch {
        sleepSync(20);
      }
    }
  }
}

/**
 * Kills a node's agent (SIGKILL, like a crash); its tasks keep running, and
 * its supervisor starts it again. Returns the pid killed, if one ran.
 */
export function killAgent(l: LabLayout, hostname: string): number | undefined {
  const pid = agentPid(l, hostname);
  // the file stays: it is the supervisor's, which replaces it when the agent is back
  if (pid !== undefined) signalGroup(pid, "SIGKILL");
  return pid;
}

/** How long a supervisor gets to stop its agent before both are SIGKILLed (it takes milliseconds). */
const STOP_WAIT_MS = 5000;

/** Stops the node's agent for good: SIGTERM to its supervisor, which kills the agent and does not restart it. */
export function stopAgent(l: LabLayout, hostname: string): void {
  const supervisor = supervisorPid(l, hostname);
  if (supervisor !== undefined) {
    try {
      process.kill(supervisor, "SIGTERM");
    } catch {}
    const deadline = Date.now() + STOP_WAIT_MS;
    while (supervisorPid(l, hostname) !== undefined && Date.now() < deadline) sleepSync(20);
  }
  // whatever did not stop, or ran without a supervisor
  killNodeProcesses(l, hostname);
}

/** `lab node stop`: stops the node's agent (it is not restarted) and cuts its underlay link. */
export function nodeStop(l: LabLayout, hostname: string): void {
  const n = nodeOf(l, hostname);
  stopAgent(l, hostname);
  ip("-n", n.netns, "link", "set", "eth0", "down");
}

/** `lab node start`: restores the link, and the agent under its supervisor unless that runs already. */
export function nodeStart(l: LabLayout, hostname: string): void {
  const n = nodeOf(l, hostname);
  ip("-n", n.netns, "link", "set", "eth0", "up");
  startAgent(l, hostname);
}

/**
 * `lab node pause`: the node's agent stops where it is (SIGSTOP) — no
 * heartbeat, no session, no DNS — while its supervisor waits on it and its
 * tasks, links and kernel state stay as they are; `nodeResume` lets it go on.
 */
export function nodePause(l: LabLayout, hostname: string): void {
  signalAgent(l, hostname, "SIGSTOP");
}

export function nodeResume(l: LabLayout, hostname: string): void {
  signalAgent(l, hostname, "SIGCONT");
}

function signalAgent(l: LabLayout, hostname: string, signal: NodeJS.Signals): void {
  const pid = agentPid(l, hostname);
  if (pid === undefined) throw precondition(`the agent of ${hostname} does not run ('vipmesh lab node start ${hostname} --name ${l.name}' starts it)`);
  process.kill(pid, signal); // the agent alone: its tasks run on
}

/** The namespace of a node (by hostname) or of the client. */
export function namespaceOf(l: LabLayout, target: string): string {
  if (target === "client") return l.client;
  const n = l.nodes.find((x) => x.hostname === target);
  if (!n) throw notFound(`lab ${l.name} has no node ${target} (nodes: ${l.nodes.map((x) => x.hostname).join(", ")}, client)`);
  return n.netns;
}
