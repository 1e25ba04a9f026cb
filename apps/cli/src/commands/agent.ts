// vipmesh agent: runs this node's agent in the foreground until SIGINT/SIGTERM.

import type { Command } from "commander";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import { cpus as hostCpus, hostname, totalmem } from "node:os";
import { isAbsolute, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseIpv4 } from "@vipmesh/core";
import { CommandFailed, UsageError } from "../errors.ts";
import { addressList } from "../host.ts";
import type { Io } from "../io.ts";
import { choice, collect, cpus, duration, ramBytes, wholeNumber } from "../options.ts";
import { nextSignal } from "../signals.ts";

interface AgentFlags {
  manager: string[];
  tokenFile?: string;
  insecure?: boolean;
  advertiseAddr: string;
  hostname?: string;
  stateDir: string;
  sandboxPrefix: string;
  cgroupParent: string;
  hide?: string[];
  dataplane: string;
  stopGrace?: number;
  dnsUpstream?: string[];
  dnsTtl?: number;
  containerdSocket: string;
  containerdNamespace: string;
  cpus?: number;
  memory?: number;
  imageGcAfter?: number;
}

const BIN_DIR = fileURLToPath(new URL("../../../../bin", import.meta.url));

export function registerAgentCommand(program: Command, io: Io): void {
  program
    .command("agent")
    .description("Run this node's agent: task sandboxes and the overlay, as the manager assigns them")
    .requiredOption(
      "--manager <addr>",
      "the managers' dispatcher addresses, host:port or a socket path: a comma-separated list, or repeated; tried in turn, and the cluster tells the agent the others",
      collect,
    )
    .requiredOption("--advertise-addr <ip>", "this node's underlay address (VXLAN endpoint)")
    .option(
      "--token-file <file>",
      "a file (mode 0600) holding the join token, or - for standard input: for a node that has not joined yet (`vipmesh join-token worker` prints one)",
    )
    .option("--insecure", "plaintext, no certificate: to a manager started with --insecure (debugging only)")
    .option("--hostname <name>", "the node's name in the cluster (default: the machine's hostname)")
    .option("--state-dir <dir>", "where the agent keeps its node ID and task state", "/var/lib/vipmesh/agent")
    .option("--sandbox-prefix <prefix>", "prefix of the task sandboxes' namespace names", "vm-")
    .option("--cgroup-parent <name>", "the cgroup, under the agent's own, that holds one cgroup per task", "vipmesh-tasks")
    .option("--hide <path>", "a path of this node that no task may see, made empty in each (repeatable): say a manager's --data-dir outside /var/lib", collect)
    .addOption(choice("--dataplane <dataplane>", "how VIPs are load-balanced", ["auto", "nftables", "ipvs"]).default("auto"))
    .option("--stop-grace <duration>", "SIGTERM to SIGKILL, when stopping a task", duration)
    .option(
      "--dns-upstream <addr>",
      "where the embedded DNS forwards names outside the cluster (repeatable; 'none'; default: this namespace's /etc/resolv.conf)",
      collect,
    )
    .option("--dns-ttl <seconds>", "TTL of the embedded DNS's answers (default 2: short, so that askers' caches follow tasks that leave)", wholeNumber)
    .option("--containerd-socket <path>", "containerd's socket: tasks with an image run as containers through it (none there: this node runs no image tasks)", "/run/containerd/containerd.sock")
    .option("--containerd-namespace <name>", "the containerd namespace of this agent's images and containers", "vipmesh")
    .option("--cpus <n>", "the CPUs this node offers tasks' reservations (default: all it has)", cpus)
    .option("--memory <size>", "the memory this node offers tasks' reservations: bytes, or 512m, 2g (default: all it has)", ramBytes)
    .option("--image-gc-after <duration>", "remove an image no task of this node used for this long (loaded counts as used; default 24h)", duration)
    .action(async (o: AgentFlags) => {
      if (parseIpv4(o.advertiseAddr) === undefined) throw new UsageError(`--advertise-addr ${o.advertiseAddr} is not an IPv4 address`);
      if (process.getuid?.() !== 0) throw new UsageError("the agent manages network namespaces and interfaces: run it as root");
      if (!/^[A-Za-z0-9_.-]{1,64}$/.test(o.cgroupParent) || /^\.\.?$/.test(o.cgroupParent)) {
        throw new UsageError(`--cgroup-parent ${o.cgroupParent}: a cgroup name is 1-64 letters, digits, '.', '_' or '-'`);
      }
      for (const path of o.hide ?? []) if (!isAbsolute(path)) throw new UsageError(`--hide ${path}: give an absolute path`);
      if (o.imageGcAfter !== undefined && o.imageGcAfter <= 0) throw new UsageError("--image-gc-after: give a duration, like 24h or 30m");
      const { Agent, EmbeddedDns, KernelIpsec, KernelIpvs, KernelMesh, KernelNftables, KernelOverlay, KernelSandboxes, ManagerAddresses } = await import("@vipmesh/agent");
      // nft is needed either way: it balances VIPs, or marks them for IPVS, and runs the mesh
      const nftables = spawnSync("nft", ["--version"]).status === 0;
      if (!nftables && o.dataplane !== "auto") throw new UsageError(`--dataplane ${o.dataplane}: the nft command is not installed`);
      const ipvs = ipvsAvailable();
      if (o.dataplane === "ipvs" && ipvs !== true) throw new UsageError(`--dataplane ipvs: ${ipvs}`);
      const plane = !nftables ? undefined : o.dataplane === "ipvs" || (o.dataplane === "auto" && ipvs === true) ? "ipvs" : "nftables";
      const log = (line: string) => io.stderr(`${new Date().toISOString()} ${line}\n`);
      const given = o.manager.flatMap((m) => addressList(m, process.cwd()));
      if (given.length === 0) throw new UsageError("--manager: give a manager's address, host:port or a socket path");
      const stateDir = resolve(o.stateDir);
      // those the cluster told a previous run too: a node whose given managers are all gone renews its certificate with another
      const managers = new ManagerAddresses(given, stateDir).all;
      if (o.insecure) log("WARNING: --insecure: plaintext to the manager, no certificate; anyone on the network can read and forge this node's traffic with it");
      const { NodeIdentity } = await import("@vipmesh/api");
      // the node's certificate, from its state dir, or by joining with the token
      const identity = o.insecure
        ? undefined
        : await NodeIdentity.obtain({ manager: managers, stateDir, ...(o.tokenFile ? { token: () => readJoinToken(o.tokenFile!) } : {}), log }).catch((err: unknown) => {
            throw new CommandFailed(`cannot join the cluster at ${managers.join(", ")}: ${err instanceof Error ? err.message : String(err)}`);
          });
      log(
        plane === "ipvs"
          ? `dataplane: ipvs (a virtual service per VIP firewall mark)${o.dataplane === "auto" ? ", chosen: this kernel has IPVS" : ""}`
          : plane === "nftables"
            ? `dataplane: nftables (one interval map per sandbox)${o.dataplane === "auto" ? `, chosen: ${ipvs}` : ""}`
            : "dataplane: none — nft is not installed, VIPs are not balanced",
      );
      const containers = await openContainers(o, log, stateDir);
      const agent = new Agent({
        managers: given,
        ...(identity ? { identity } : {}),
        advertiseAddr: o.advertiseAddr,
        hostname: o.hostname ?? hostname(),
        stateDir,
        sandboxPrefix: o.sandboxPrefix,
        cgroupParent: o.cgroupParent,
        hidePaths: (o.hide ?? []).map((path) => resolve(path)),
        binDir: BIN_DIR,
        ...(o.stopGrace !== undefined ? { stopGraceMs: o.stopGrace } : {}),
        ...containers,
        ...(o.imageGcAfter !== undefined ? { imageGcAfterMs: o.imageGcAfter } : {}),
        resources: { nanoCpus: o.cpus ?? hostCpus().length * 1e9, memoryBytes: o.memory ?? totalmem() },
        overlay: new KernelOverlay(),
        sandboxes: new KernelSandboxes(),
        // encrypted networks need the manager's keys, which travel only over mutual TLS
        ...(identity ? { ipsec: new KernelIpsec() } : {}),
        ...(plane ? { loadBalancer: plane === "ipvs" ? new KernelIpvs({ log }) : new KernelNftables({ log }), mesh: new KernelMesh({ log }) } : {}),
        dns: new EmbeddedDns({
          log,
          ...(o.dnsTtl !== undefined ? { ttl: o.dnsTtl } : {}),
          ...(o.dnsUpstream ? { upstreams: o.dnsUpstream.filter((u) => u !== "none") } : {}),
        }),
        log,
      });
      const stopping = nextSignal();
      agent.start();
      const signal = await stopping.received;
      io.stderr(`${signal}: stopping the agent (tasks keep running)\n`);
      await agent.stop();
    });
}

/**
 * The container runtime over containerd at --containerd-socket, with what a
 * previous agent left running found; or why there is none (the agent then
 * rejects image tasks saying so, and does not register the runtime).
 */
export async function openContainers(
  o: Pick<AgentFlags, "containerdSocket" | "containerdNamespace" | "stopGrace" | "cgroupParent">,
  log: (line: string) => void,
  stateDir: string,
): Promise<{ containers: import("@vipmesh/agent").ContainerRunner; images: import("@vipmesh/containerd").Containerd } | { noContainers: string }> {
  const socket = resolve(o.containerdSocket);
  if (!existsSync(socket)) {
    const why = `no containerd socket at ${socket}: run containerd, or give the agent --containerd-socket`;
    log(`containers: none, ${why}`);
    return { noContainers: why };
  }
  const [{ Containerd }, { ContainerRunner, DEFAULT_STOP_GRACE_MS }] = await Promise.all([import("@vipmesh/containerd"), import("@vipmesh/agent")]);
  try {
    const containerd = await Containerd.connect({ socket, namespace: o.containerdNamespace });
    const { version } = await containerd.version();
    const containers = await ContainerRunner.open({
      containerd,
      stateDir,
      stopGraceMs: o.stopGrace ?? DEFAULT_STOP_GRACE_MS,
      cgroupParent: o.cgroupParent,
      log,
    });
    log(`containers: containerd ${version} at ${socket}, namespace ${o.containerdNamespace}`);
    return { containers, images: containerd };
  } catch (err) {
    const why = `containerd at ${socket} does not answer: ${err instanceof Error ? err.message : String(err)}`;
    log(`containers: none, ${why}`);
    return { noContainers: why };
  }
}

/** True when this kernel has IPVS (loading ip_vs if need be) and ipvsadm is installed; else why not. */
function ipvsAvailable(): true | string {
  if (!existsSync("/proc/net/ip_vs")) spawnSync("modprobe", ["ip_vs"], { stdio: "ignore" });
  if (!existsSync("/proc/net/ip_vs")) return "this kernel has no IPVS (no /proc/net/ip_vs, and modprobe ip_vs did not load it)";
  if (spawnSync("ipvsadm", ["--version"]).status !== 0) return "ipvsadm is not installed (apt-get install ipvsadm)";
  return true;
}

/**
 * The join token from its file ("-": standard input). Never an argument or an
 * environment variable: /proc shows those to every process of the node, tasks included.
 */
export function readJoinToken(file: string): string {
  let text: string;
  try {
    if (file !== "-") {
      const mode = statSync(file).mode & 0o777;
      if ((mode & 0o077) !== 0) throw new UsageError(`the join token file ${file} can be read by others (mode ${mode.toString(8)}): chmod 600 ${file}`);
    }
    text = readFileSync(file === "-" ? 0 : file, "utf8").trim();
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`cannot read the join token from ${file === "-" ? "standard input" : file}: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (!text) throw new UsageError(`${file === "-" ? "standard input" : file} holds no join token (\`vipmesh join-token worker\` prints one)`);
  return text;
}

