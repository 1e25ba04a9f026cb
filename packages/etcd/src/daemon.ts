// A private etcd member (a lab manager's, a test's): its data, log and TLS
// under one directory, started inside a network namespace with nsenter --net
// when one is given. Members of a new cluster start together and serve
// clients only once they have quorum: start all, then await each one's ready().

import { spawn } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from "node:fs";
import { resolve } from "node:path";

const ETCD = "/usr/bin/etcd";
const STOP_TIMEOUT_MS = 10_000;
const POLL_MS = 50;
const LOG_TAIL_LINES = 15;

/**
 * Raft timing for a loaded 2-core machine: etcd's defaults (100 ms heartbeat,
 * 1 s election) call elections when a busy machine delays a heartbeat by a
 * second; 250 ms / 2.5 s keep the leader through that and still elect a new
 * one within ~3 s of losing it.
 */
export const LOADED_MACHINE_TIMING = { heartbeatMs: 250, electionMs: 2500 } as const;

export interface EtcdTls {
  /** The cluster CA that signs members and clients (ca.pem). */
  caFile: string;
  /** This member's certificate and key, for clients and peers alike (serverAuth + clientAuth). */
  certFile: string;
  keyFile: string;
}

export interface EtcdMemberOptions {
  name: string;
  /** Holds data/, etcd.log. */
  dir: string;
  netns?: string;
  /** The address it serves clients and peers on (in its namespace). */
  host: string;
  clientPort?: number;
  peerPort?: number;
  /** Every member of the cluster: name → peer URL; default this member alone. */
  initialCluster?: Record<string, string>;
  /** "existing" to join a running cluster (after `etcdctl member add`). */
  clusterState?: "new" | "existing";
  /** Mutual TLS for clients and peers; without it plain http (tests of logic only). */
  tls?: EtcdTls;
  heartbeatMs?: number;
  electionMs?: number;
}

export interface EtcdMember {
  name: string;
  pid: number;
  dir: string;
  /** Where clients reach it: https://host:port (http without TLS). */
  clientUrl: string;
  peerUrl: string;
  /** Resolves once the member serves clients (it has quorum); rejects if it exits first or after timeoutMs. */
  ready(timeoutMs?: number): Promise<void>;
  /** Sends a signal (SIGSTOP/SIGCONT/SIGKILL in fault tests). */
  signal(sig: NodeJS.Signals): void;
  alive(): boolean;
  /** SIGTERM, then SIGKILL after 10 s; resolves once it is gone. */
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !/^\S+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

function read(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

const tail = (text: string) => text.trimEnd().split("\n").slice(-LOG_TAIL_LINES).join("\n") || "(empty)";

/** The etcd command line of a member (exported for tests and the docs). */
export function etcdArgs(o: EtcdMemberOptions, dir: string): string[] {
  const scheme = o.tls ? "https" : "http";
  const client = `${scheme}://${o.host}:${o.clientPort ?? 2379}`;
  const peer = `${scheme}://${o.host}:${o.peerPort ?? 2380}`;
  const cluster = o.initialCluster ?? { [o.name]: peer };
  const timing = { heartbeatMs: o.heartbeatMs ?? LOADED_MACHINE_TIMING.heartbeatMs, electionMs: o.electionMs ?? LOADED_MACHINE_TIMING.electionMs };
  const args = [
    `--name=${o.name}`,
    `--data-dir=${dir}/data`,
    `--listen-client-urls=${client}`,
    `--advertise-client-urls=${client}`,
    `--listen-peer-urls=${peer}`,
    `--initial-advertise-peer-urls=${peer}`,
    `--initial-cluster=${Object.entries(cluster)
      .map(([n, u]) => `${n}=${u}`)
      .join(",")}`,
    `--initial-cluster-state=${o.clusterState ?? "new"}`,
    "--initial-cluster-token=vipmesh",
    `--heartbeat-interval=${timing.heartbeatMs}`,
    `--election-timeout=${timing.electionMs}`,
    // old revisions go after an hour: a manager's watch that falls further behind reloads
    "--auto-compaction-mode=periodic",
    "--auto-compaction-retention=1h",
    "--logger=zap",
    "--log-outputs=stderr",
  ];
  if (o.tls) {
    const { caFile, certFile, keyFile } = o.tls;
    args.push(
      "--client-cert-auth",
      `--trusted-ca-file=${caFile}`,
      `--cert-file=${certFile}`,
      `--key-file=${keyFile}`,
      "--peer-client-cert-auth",
      `--peer-trusted-ca-file=${caFile}`,
      `--peer-cert-file=${certFile}`,
      `--peer-key-file=${keyFile}`,
    );
  }
  return args;
}

/** Starts one member; await its ready() (for a new cluster, once all members are started). */
export function startEtcd(o: EtcdMemberOptions): EtcdMember {
  if (!existsSync(ETCD)) throw new Error(`${ETCD} is not installed (apt-get install etcd-server)`);
  if (o.netns && !existsSync(`/run/netns/${o.netns}`)) throw new Error(`network namespace ${o.netns} does not exist (/run/netns/${o.netns})`);
  const dir = resolve(o.dir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const args = etcdArgs(o, dir);
  const log = `${dir}/etcd.log`;
  const fd = openSync(log, "a");
  const cmd = o.netns ? ["nsenter", `--net=/run/netns/${o.netns}`, "--", ETCD, ...args] : [ETCD, ...args];
  const child = spawn(cmd[0] as string, cmd.slice(1), { detached: true, stdio: ["ignore", fd, fd] });
  closeSync(fd);
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start ${cmd.join(" ")}`);
  let exited: string | undefined;
  child.on("exit", (code, sig) => {
    exited = sig ? `killed by ${sig}` : `exit code ${code}`;
  });
  child.unref();
  const logStart = read(log).length; // a restarted member appends to the log of its last run
  const clientUrl = args.find((a) => a.startsWith("--advertise-client-urls="))!.split("=")[1]!;
  const peerUrl = args.find((a) => a.startsWith("--initial-advertise-peer-urls="))!.split("=")[1]!;
  return {
    name: o.name,
    pid,
    dir,
    clientUrl,
    peerUrl,
    alive: () => alive(pid),
    signal: (sig) => {
      if (alive(pid)) process.kill(pid, sig);
    },
    ready: async (timeoutMs = 30_000) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const text = read(log).slice(logStart);
        if (text.includes('"msg":"serving client traffic')) return; // etcd 3.4's zap line, once it has quorum
        if (exited) throw new Error(`etcd ${o.name} ${exited} while starting; its log (${log}) ends:\n${tail(text)}`);
        if (Date.now() > deadline) throw new Error(`etcd ${o.name} did not serve clients within ${timeoutMs / 1000}s; its log (${log}) ends:\n${tail(text)}`);
        await sleep(POLL_MS);
      }
    },
    stop: async () => {
      if (!alive(pid)) return;
      process.kill(pid, "SIGCONT"); // a stopped member would not see SIGTERM
      process.kill(pid, "SIGTERM");
      const deadline = Date.now() + STOP_TIMEOUT_MS;
      while (alive(pid) && Date.now() < deadline) await sleep(POLL_MS);
      if (alive(pid)) process.kill(pid, "SIGKILL");
      while (alive(pid)) await sleep(POLL_MS);
    },
  };
}
