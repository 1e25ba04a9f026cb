// The lab's managers on etcd (`lab up --managers N`, or `--store etcd`):
// managers m1…mN, each in a namespace of its own on the underlay
// (192.168.100.2…) beside one member of an etcd cluster. Before anything
// starts, the lab makes a cluster CA (as `vipmesh ca init`) and from it the
// members' certificates and the etcd clients' (the managers' `vipmesh-manager`,
// the admin's `root`), then turns etcd's auth on, so that a node's certificate,
// which the same CA signs, reads nothing. All of it lives under the lab's dir:
// `lab down` removes it as it removes the rest. etcd and the signing code are
// loaded only here, when a lab on etcd starts: not by every `vipmesh` call.

import { waitFor } from "@vipmesh/api";
import { invalid, notFound, VipmeshError } from "@vipmesh/core";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DOCKER_TLS_PORT, killedByKernel, MANAGER_PORT, POLL_MS, startDetached, UNDERLAY, VIPMESH } from "./host.ts";
import type { LabLayout } from "./lab.ts";
import { killPidFile, livePid, writePidFile } from "./pid-file.ts";

const ETCD_CLIENT_PORT = 2379;
const ETCD_PEER_PORT = 2380;
/** The keys the managers may read and write; etcd's auth keeps everyone else (a node's certificate) out. */
export const STORE_PREFIX = "/vipmesh/";
/** The role of the managers' etcd user (vipmesh-manager, their client certificate's CN). */
const MANAGER_ROLE = "vipmesh";
/** The lab's own admin and read-only identities: what the lab's calls and the CLI present to any manager. */
const USER_CERT_VALIDITY_MS = 90 * 24 * 3600_000;
/** How long a member that starts again gets to rejoin and serve (once a quorum runs). */
const MEMBER_READY_MS = 30_000;

/** One of the lab's managers on etcd, with the etcd member beside it. */
export interface LabManager {
  /** m1, m2, …: its hostname, and its etcd member's name. */
  name: string;
  netns: string;
  /** Its underlay address. */
  addr: string;
  /** ADDR:PORT it serves the cluster API on: what agents dial. */
  listen: string;
  dataDir: string;
  socket: string;
  dockerSocket: string;
  /** Its Engine API over mutual TLS, ADDR:PORT. */
  dockerTcp: string;
  /** Its etcd member's dir: data/, etcd.log, tls/. */
  etcdDir: string;
  etcdClientUrl: string;
  etcdPeerUrl: string;
}

/** What the managers on etcd share, under the lab's dir. */
export interface LabEtcd {
  /** The cluster CA (ca.pem, ca.key), made before anything else. */
  caDir: string;
  /** The managers' etcd client identity (CN vipmesh-manager). */
  clientTlsDir: string;
  /** The admin's etcd client identity (CN root): etcdctl's. */
  rootTlsDir: string;
  /** The key (0600) the managers seal the store's secrets with. */
  storeKeyFile: string;
  /** Every member's client URL. */
  endpoints: string[];
}

/** The layout of N managers on etcd in the lab's dir `dir`. */
export function managersLayout(dir: string, prefix: string, count: number): { managers: LabManager[]; etcd: LabEtcd } {
  const managers = Array.from({ length: count }, (_, i): LabManager => {
    const name = `m${i + 1}`;
    const addr = `${UNDERLAY}.${2 + i}`;
    return {
      name,
      netns: `${prefix}${name}`,
      addr,
      listen: `${addr}:${MANAGER_PORT}`,
      dataDir: join(dir, name),
      socket: join(dir, `${name}.sock`),
      dockerSocket: join(dir, `${name}-docker.sock`),
      dockerTcp: `${addr}:${DOCKER_TLS_PORT}`,
      etcdDir: join(dir, `etcd-${name}`),
      etcdClientUrl: `https://${addr}:${ETCD_CLIENT_PORT}`,
      etcdPeerUrl: `https://${addr}:${ETCD_PEER_PORT}`,
    };
  });
  return {
    managers,
    etcd: {
      caDir: join(dir, "ca"),
      clientTlsDir: join(dir, "etcd-client"),
      rootTlsDir: join(dir, "etcd-root"),
      storeKeyFile: join(dir, "store.key"),
      endpoints: managers.map((m) => m.etcdClientUrl),
    },
  };
}

/** The lab's sockets of managers on etcd, m1.sock…, from the names in its dir (no lab.json read: every CLI call looks). */
export const MANAGER_SOCKET = /^m(\d+)\.sock$/;

function managerOf(l: LabLayout, name: string): LabManager {
  const managers = l.managers ?? [];
  const m = managers.find((x) => x.name === name || x.name === `m${name}`);
  if (m) return m;
  if (managers.length === 0) throw invalid(`lab ${l.name} runs one manager, not managers on etcd (lab up --managers N)`);
  throw notFound(`lab ${l.name} has no manager ${name} (managers: ${managers.map((x) => x.name).join(", ")})`);
}

const managerPidFile = (l: LabLayout, m: LabManager) => join(l.dir, `${m.name}.pid`);
const memberPidFile = (l: LabLayout, m: LabManager) => join(l.dir, `etcd-${m.name}.pid`);

/**
 * The CA, the certificates, the store key and a running etcd cluster with its
 * auth on: everything the managers need before the first starts.
 */
export async function startEtcdCluster(l: LabLayout, log: (line: string) => void): Promise<void> {
  const { managers, etcd } = haOf(l);
  const { ClusterCa, ETCD_ADMIN_USER, ETCD_MANAGER_USER, issueEtcd } = await import("@vipmesh/pki/signing");
  const { writeIdentity } = await import("@vipmesh/pki");
  log(`cluster CA in ${etcd.caDir}`);
  const ca = await ClusterCa.create(etcd.caDir);
  for (const m of managers) writeIdentity(join(m.etcdDir, "tls"), await issueEtcd(ca, { name: m.name, usage: "peer", ips: [m.addr] }));
  writeIdentity(etcd.clientTlsDir, await issueEtcd(ca, { name: "manager", cn: ETCD_MANAGER_USER, usage: "client" }));
  writeIdentity(etcd.rootTlsDir, await issueEtcd(ca, { name: "root", cn: ETCD_ADMIN_USER, usage: "client" }));
  // the lab's admin and read-only users, trusted by every manager (one CA): no manager's data dir need be read
  writeIdentity(l.tlsDir, await ca.issue({ id: "admin", role: "admin" }, USER_CERT_VALIDITY_MS));
  writeIdentity(l.readonlyTlsDir, await ca.issue({ id: "readonly", role: "readonly" }, USER_CERT_VALIDITY_MS));
  // 32 bytes in 64 hex characters, as `vipmesh store key` writes it
  writeFileSync(etcd.storeKeyFile, `${randomBytes(32).toString("hex")}\n`, { mode: 0o600 });

  log(`etcd: ${managers.length} members, one in each manager's namespace`);
  const members = [];
  for (const m of managers) members.push(await startMember(l, m));
  await Promise.all(members.map((member) => member.ready(MEMBER_READY_MS)));
  log("etcd: auth on (users root and vipmesh-manager, role vipmesh: readwrite on /vipmesh/)");
  enableAuth(l, ETCD_ADMIN_USER, ETCD_MANAGER_USER);
}

/** Starts member `m` on its data dir (a new cluster's, or rejoining it); its pid to etcd-<m>.pid. */
async function startMember(l: LabLayout, m: LabManager) {
  const { startEtcd } = await import("@vipmesh/etcd");
  const tls = join(m.etcdDir, "tls");
  const member = startEtcd({
    name: m.name,
    dir: m.etcdDir,
    netns: m.netns,
    host: m.addr,
    clientPort: ETCD_CLIENT_PORT,
    peerPort: ETCD_PEER_PORT,
    // once its data dir holds the cluster, etcd ignores these: a restart rejoins
    initialCluster: Object.fromEntries(haOf(l).managers.map((x) => [x.name, x.etcdPeerUrl])),
    tls: { caFile: join(tls, "ca.pem"), certFile: join(tls, "cert.pem"), keyFile: join(tls, "key.pem") },
    // LOADED_MACHINE_TIMING: startEtcd's default
  });
  writePidFile(memberPidFile(l, m), member.pid);
  return member;
}

/** The users, the role and `auth enable`, as the docs (docs/HA.md) do them with etcdctl. */
function enableAuth(l: LabLayout, admin: string, managers: string): void {
  const run = (...args: string[]) => etcdctl(l, args);
  // users without passwords: a client certificate's CN is the only way in
  run("user", "add", admin, "--no-password");
  run("user", "grant-role", admin, "root");
  run("role", "add", MANAGER_ROLE);
  run("role", "grant-permission", MANAGER_ROLE, "readwrite", STORE_PREFIX, "--prefix=true");
  run("user", "add", managers, "--no-password");
  run("user", "grant-role", managers, MANAGER_ROLE);
  run("auth", "enable");
}

/**
 * etcdctl on the lab's etcd cluster (or the `endpoints` given: a snapshot
 * is taken from one member), from the fabric namespace, as the identity in
 * `tlsDir` (default the admin, root); its output, or an error with etcdctl's
 * own message.
 */
export function etcdctl(l: LabLayout, args: string[], o: { tlsDir?: string; endpoints?: string[] } = {}): string {
  const { endpoints = haOf(l).etcd.endpoints, tlsDir = haOf(l).etcd.rootTlsDir } = o;
  const tls = [`--cacert=${join(tlsDir, "ca.pem")}`, `--cert=${join(tlsDir, "cert.pem")}`, `--key=${join(tlsDir, "key.pem")}`];
  try {
    return execFileSync("nsenter", [`--net=/run/netns/${l.fabric}`, "--", "etcdctl", `--endpoints=${endpoints.join(",")}`, ...tls, ...args], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
      timeout: 20_000,
    });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    // its own words, without the client library's JSON log lines
    const said = (e.stderr ?? "").split("\n").filter((line) => line.trim() && !line.startsWith("{")).join("\n");
    throw new Error(`etcdctl ${args.join(" ")}: ${said || e.message}`);
  }
}

function haOf(l: LabLayout): { managers: LabManager[]; etcd: LabEtcd } {
  if (!l.managers || !l.etcd) throw invalid(`lab ${l.name} runs one manager, not managers on etcd (lab up --managers N)`);
  return { managers: l.managers, etcd: l.etcd };
}

/** Starts every manager: m1 first (it sets the cluster up in the store), then the others together. */
export async function startManagers(l: LabLayout): Promise<void> {
  const [first, ...rest] = haOf(l).managers;
  await startLabManager(l, first!.name);
  await Promise.all(rest.map((m) => startLabManager(l, m.name)));
}

/** Starts manager `name` (m1…) in its namespace on its data dir, unless it runs; resolves once it listens. */
export async function startLabManager(l: LabLayout, name: string): Promise<void> {
  const m = managerOf(l, name);
  if (labManagerRuns(l, m.name)) return;
  const { etcd } = haOf(l);
  const args = ["manager", "--data-dir", m.dataDir, "--hostname", m.name, "--listen", m.listen, "--listen", `unix:${m.socket}`];
  args.push("--docker-api", `unix:${m.dockerSocket}`, "--docker-api", `tcp://${m.dockerTcp}`);
  args.push("--store", "etcd", "--etcd-endpoints", etcd.endpoints.join(","), "--etcd-tls-dir", etcd.clientTlsDir, "--store-key", etcd.storeKeyFile, "--ca-dir", etcd.caDir);
  await launchManager(l, { what: `manager ${m.name} of lab ${l.name}`, netns: m.netns, pidFile: managerPidFile(l, m), logFile: join(l.dir, `${m.name}.log`), sockets: [m.socket, m.dockerSocket], args });
}

/** Kills manager `name` (SIGKILL, like a crash); `startLabManager` brings it back on its data dir. */
export function killLabManager(l: LabLayout, name: string): void {
  const m = managerOf(l, name);
  killPidFile(managerPidFile(l, m));
  for (const socket of [m.socket, m.dockerSocket]) rmSync(socket, { force: true });
}

export const labManagerRuns = (l: LabLayout, name: string): boolean => livePid(managerPidFile(l, managerOf(l, name))) !== undefined;
export const labManagerPid = (l: LabLayout, name: string): number | undefined => livePid(managerPidFile(l, managerOf(l, name)));

/** etcd member `k` (1…, or m1…): the manager namespace it runs in names it. */
const memberOf = (l: LabLayout, k: string) => managerOf(l, /^\d+$/.test(k) ? `m${k}` : k);

/** Kills etcd member `k` (SIGKILL, like a crash); its data dir stays for `startEtcdMember`. */
export function killEtcdMember(l: LabLayout, k: string): void {
  killPidFile(memberPidFile(l, memberOf(l, k)));
}

/** Starts etcd member `k` again on its data dir, unless it runs; resolves once it serves (which takes a quorum of members). */
export async function startEtcdMember(l: LabLayout, k: string): Promise<void> {
  const m = memberOf(l, k);
  if (etcdMemberPid(l, m.name) !== undefined) return;
  const member = await startMember(l, m);
  await member.ready(MEMBER_READY_MS).catch((err: unknown) => {
    throw new VipmeshError("unavailable", `${(err as Error).message}\n(a member serves clients only once a quorum of the ${haOf(l).managers.length} runs: 'vipmesh lab etcd start' another)`);
  });
}

export const etcdMemberPid = (l: LabLayout, k: string): number | undefined => livePid(memberPidFile(l, memberOf(l, k)));

/** How to start a manager process: where, with what, and the sockets that show it listens. */
export interface ManagerLaunch {
  what: string;
  netns: string;
  pidFile: string;
  logFile: string;
  sockets: string[];
  args: string[];
}

/** Starts a manager detached; resolves once it listens on its sockets, fails at once if it exits first. */
export async function launchManager(l: LabLayout, o: ManagerLaunch): Promise<void> {
  const args = [...o.args];
  // no overlay may take the underlay's addresses: the nodes', the managers' and the client's
  args.push("--reserved-subnets", `${UNDERLAY}.0/24`);
  if (l.heartbeatMs) args.push("--heartbeat-period", `${l.heartbeatMs}ms`);
  if (l.keyRotationMs) args.push("--key-rotation", `${l.keyRotationMs}ms`);
  for (const socket of o.sockets) rmSync(socket, { force: true });
  mkdirSync(l.dir, { recursive: true, mode: 0o700 });
  startDetached(o.logFile, o.pidFile, o.netns, [VIPMESH, ...args]);
  // listening on its sockets means it is up (it writes its admin identity first); while it runs, a slow
  // machine gets time to load it (the kernel VM emulates one), and a manager that exits fails at once
  const up = await waitFor(
    `the ${o.what}`,
    () => (o.sockets.every((s) => existsSync(s)) ? "up" : livePid(o.pidFile) === undefined ? "exited" : undefined),
    120_000,
    POLL_MS,
  );
  if (up === "exited") throw new Error(`the ${o.what} exited before it listened${killedByKernel()}`);
}
