// HA benchmark (issue 23, not a test): the SQLite default and managers on etcd,
// measured the same way in one run and printed side by side.
//
//   npx tsx bench/ha.ts [--quick] [--setups sqlite,etcd] [--out FILE]    (npm run bench -- ha)
//   wrap it in `flock /tmp/vipmesh-kernel.lock …` on a shared machine
//
// The setups, everything on 127.0.0.1:
//   sqlite: one manager process, its store in its data dir;
//   etcd:   a 3-member etcd cluster (mutual TLS, certificates from a CA made with @vipmesh/pki's
//           ClusterCa.create and issueEtcdCertificate; raft timing LOADED_MACHINE_TIMING) and 3
//           manager processes m1..m3 sharing it (one store key, the CA imported by m1).
// Every manager is a process of its own (this script forked with --manager-child, calling
// startManager); simulated agents (SimAgent, the real dispatcher protocol) run in this process,
// agent i on manager i % N. Per size (100 sessions, then 1,000; --quick: 100) and per setup, a
// fresh cluster:
//   1. the agents join and open their sessions (a join or registration refused is made again, a
//      session a manager closes is opened again, as real agents do: both counted and reported);
//   2. create: 10 overlay networks, then S services (service i on network i % 10), 32 CreateService
//      calls in flight, call i through manager i % N (one answered UNAVAILABLE, "retry it", is made
//      again and counted); then until every agent's view is complete;
//   3. scale → every session: bench/lib/fleet.ts's scaleOnce (a service 3 → 4 and back, timed
//      from UpdateService until the last session whose view holds its network has the change),
//      operation k through manager k % N, after a few untimed ones;
//   4. memory: each manager process's RSS (/proc/PID/status VmRSS) and JS heap after a full GC;
//      the etcd members' RSS beside;
//   5. failover (100 sessions only): SIGKILL the leader (the manager ListManagers marks leader),
//      then a CreateNetwork every 50 ms to the survivors in turn, each on a new connection, until
//      one is accepted: the figure is the time from the kill to that answer (target ≤ 5 s). Beside
//      it: until a scale-up sent right after the kill has its new task scheduled (the leader's
//      orchestrator and scheduler at work again), and until a survivor reports a new leader. SQLite
//      has no standby: its figures are the same manager restarted at once on its data dir, as a
//      supervisor would.
// Percentiles are nearest-rank. The report goes to stdout, progress to stderr, the numbers to
// bench/results/ha.json.

import { call, clusterClient, type ClusterServiceClient, credentialsFromDir, type wire } from "@vipmesh/api";
import { seededRandom } from "@vipmesh/core";
import { type EtcdMember, LOADED_MACHINE_TIMING } from "@vipmesh/etcd";
import { type ManagerOptions, type RunningManager, startManager } from "@vipmesh/manager";
import { freePort, tempDir } from "@vipmesh/testing";
import { type ChildProcess, fork } from "node:child_process";
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { getHeapStatistics } from "node:v8";
import { machineBusyMs, processCpuMs, processRssMb } from "./lib/cpu.ts";
import { startBenchEtcd } from "./lib/etcd.ts";
import { eachFlag } from "./lib/flags.ts";
import { Fleet, now, pad, pool, Progress, type ScaleSample, scaleOnce, sleep, until } from "./lib/fleet.ts";
import { summarize } from "./lib/samples.ts";

const FAILOVER_TARGET_MS = 5000;
/** How often the failover loop sends a write, and how long one may take. */
const FAILOVER_EVERY_MS = 50;
const FAILOVER_CALL_DEADLINE_MS = 2000;
/** Give up on a failover after this long: it failed. */
const FAILOVER_LIMIT_MS = 30_000;
const CREATE_CONCURRENCY = 32;
const NETWORKS = 10;
const SCALE_TIMEOUT_MS = 5000;
const CHILD_FLAG = "--manager-child";
const CHILD_OPTIONS_ENV = "VIPMESH_HA_BENCH_MANAGER";
/** Simulated agents join from one address with one token, a thousand in a minute: past the default join rate. */
const JOIN_RATE = { count: 100_000, windowMs: 60_000 };

type SetupKind = "sqlite" | "etcd";

interface Round {
  agents: number;
  services: number;
  replicas: number;
  scales: number;
  warmup: number;
  failover: boolean;
}

const ROUNDS: Record<"quick" | "default", Round[]> = {
  // 1,000 simulated agents take 45-80 s to join on 2 cores (this process's TLS and CSRs): default mode only
  quick: [{ agents: 100, services: 100, replicas: 3, scales: 20, warmup: 4, failover: true }],
  default: [
    { agents: 100, services: 300, replicas: 3, scales: 40, warmup: 6, failover: true },
    { agents: 1000, services: 1000, replicas: 1, scales: 20, warmup: 4, failover: false },
  ],
};

interface Options {
  mode: "quick" | "default";
  setups: SetupKind[];
  out: string;
  timeoutS: number;
}

const HELP = `usage: npx tsx bench/ha.ts [--quick] [--setups sqlite,etcd] [--timeout S] [--out FILE]
  --quick          100 sessions only, fewer services and scale operations (about a minute)
  --setups LIST    which setups to measure (sqlite,etcd)
  --timeout S      abort the whole run after S seconds (900)
  --out FILE       where to write the JSON results (bench/results/ha.json)`;

function parseOptions(argv: string[]): Options {
  const o: Options = { mode: "default", setups: ["sqlite", "etcd"], out: join(dirname(fileURLToPath(import.meta.url)), "results", "ha.json"), timeoutS: 900 };
  eachFlag(argv, HELP, (flag, value) => {
    if (flag === "--quick") o.mode = "quick";
    else if (flag === "--out") o.out = value();
    else if (flag === "--timeout") o.timeoutS = Number(value());
    else if (flag === "--setups") {
      const v = value().split(",");
      if (v.length === 0 || v.some((s) => s !== "sqlite" && s !== "etcd")) throw new Error(`--setups ${v.join(",")}: sqlite, etcd or both`);
      o.setups = v as SetupKind[];
    } else return false;
    return true;
  });
  if (!(o.timeoutS > 0)) throw new Error("--timeout: a number of seconds");
  return o;
}

// ---- small helpers -----------------------------------------------------------

const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;
const fmtMs = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? "—" : x >= 1000 ? `${(x / 1000).toFixed(2)} s` : `${x.toFixed(x >= 100 ? 0 : 1)} ms`);
const fmtMb = (x: number) => (Number.isNaN(x) ? "—" : `${x.toFixed(0)} MB`);
const secs = (x: number) => `${(x / 1000).toFixed(1)} s`;
const rss = (pid: number) => {
  const m = processRssMb(pid);
  return { rssMb: round(m.rssMb), peakRssMb: round(m.peakMb) };
};
const codeOf = (err: unknown) => (err as { code?: number }).code;
const GRPC_UNIMPLEMENTED = 12;
const GRPC_UNAVAILABLE = 14;
const CALL_ATTEMPTS = 5;

/**
 * `fn` again when a manager answers UNAVAILABLE (with etcd: other managers wrote first, and it
 * says to retry), as a client would, up to CALL_ATTEMPTS times; each retry counted in `retried`.
 */
async function retryUnavailable<T>(fn: () => Promise<T>, retried: { count: number }): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (codeOf(err) !== GRPC_UNAVAILABLE || attempt === CALL_ATTEMPTS) throw err;
      retried.count++;
      await sleep(20 * attempt);
    }
  }
}


const tail = (file: string) => {
  try {
    return readFileSync(file, "utf8").trimEnd().split("\n").slice(-10).join("\n");
  } catch {
    return "(no log)";
  }
};

/** Set once the run is being aborted: what fails as its clusters go is no news. */
let aborting = false;

/** CPU the children this run started used, counted when they stop (they are gone afterwards). */
let childrenCpuMs = 0;

// ---- a manager process ----------------------------------------------------------------

interface ManagerProcess {
  name: string;
  pid: number;
  address: string;
  adminTlsDir: string;
  /** Its own admin connection, kept open. */
  client: ClusterServiceClient;
  /** Its JS heap in use after a full GC, in MB. */
  heapMb(): Promise<number>;
  cpuMs(): number;
  kill(): void;
  stop(): Promise<void>;
}

/** Starts a manager in a process of its own (this file with --manager-child); resolves once it listens. */
async function spawnManager(name: string, options: ManagerOptions, logFile: string): Promise<ManagerProcess> {
  const fd = openSync(logFile, "a");
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), [CHILD_FLAG], {
    execArgv: ["--import", import.meta.resolve("tsx"), "--expose-gc"],
    env: { ...process.env, [CHILD_OPTIONS_ENV]: JSON.stringify(options) },
    stdio: ["ignore", fd, fd, "ipc"],
  });
  closeSync(fd);
  const pid = child.pid!;
  let exited = false;
  let killed = false;
  let stopping: Promise<void> | undefined;
  child.once("exit", () => (exited = true));
  const ready = await new Promise<{ address: string; adminTlsDir: string }>((resolve, reject) => {
    child.once("message", (m: { address?: string; adminTlsDir?: string; error?: string }) =>
      m.address && m.adminTlsDir ? resolve(m as { address: string; adminTlsDir: string }) : reject(new Error(`manager ${name} failed to start: ${m.error}`)),
    );
    child.once("exit", (code, sig) => reject(new Error(`manager ${name} exited (${sig ?? code}) before it listened; ${logFile} ends:\n${tail(logFile)}`)));
  });
  const client = clusterClient(ready.address, credentialsFromDir(ready.adminTlsDir), { ownConnection: true });
  const cpuMs = () => processCpuMs(pid);
  const gone = () => new Promise<void>((resolve) => (exited ? resolve() : child.once("exit", () => resolve())));
  return {
    name,
    pid,
    ...ready,
    client,
    cpuMs,
    heapMb: () =>
      new Promise<number>((resolve) => {
        const on = (m: { heapMb?: number }) => {
          if (m.heapMb === undefined) return;
          child.off("message", on);
          resolve(m.heapMb);
        };
        child.on("message", on);
        child.send("heap");
      }),
    kill: () => {
      childrenCpuMs += cpuMs();
      killed = true;
      client.close();
      child.kill("SIGKILL");
    },
    // once: an abort's cleanup and the round's may both stop it
    stop: () => {
      stopping ??= (async () => {
        if (killed || exited) return gone();
        childrenCpuMs += cpuMs();
        client.close();
        child.send("stop");
        const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
        await gone();
        clearTimeout(timer);
      })();
      return stopping;
    },
  };
}

/** The manager process's side: start, answer "heap" and "stop", and go when the benchmark does. */
async function managerChild(): Promise<void> {
  const options = JSON.parse(process.env[CHILD_OPTIONS_ENV]!) as ManagerOptions;
  let m: RunningManager;
  try {
    m = await startManager(options);
  } catch (err) {
    process.send!({ error: err instanceof Error ? err.message : String(err) });
    process.exit(1);
  }
  const gc = (globalThis as { gc?: () => void }).gc;
  process.on("message", async (msg) => {
    if (msg === "heap") {
      gc?.();
      process.send!({ heapMb: gc ? getHeapStatistics().used_heap_size / 2 ** 20 : Number.NaN });
    } else if (msg === "stop") {
      await m.stop();
      process.exit(0);
    }
  });
  // the benchmark went away (it failed or was killed): so does its manager
  process.on("disconnect", () => process.exit(0));
  process.send!({ address: m.addresses[0], adminTlsDir: m.adminTlsDir });
}

// ---- a cluster: one SQLite manager, or 3 etcd members and 3 managers ------------------

interface Cluster {
  managers: ManagerProcess[];
  etcd: EtcdMember[];
  /** Starts manager `m` again with its options (after it was killed): the SQLite failover. */
  restart(m: ManagerProcess): Promise<ManagerProcess>;
  stop(): Promise<void>;
}

/** The clusters running now: stopped on an abort too (etcd's members are detached and would outlive this process). */
const liveClusters = new Set<Cluster>();

async function startCluster(kind: SetupKind, dir: string, progress: Progress): Promise<Cluster> {
  const etcd: EtcdMember[] = [];
  const managers: ManagerProcess[] = [];
  const optionsOf = new Map<string, ManagerOptions>();
  const start = async (name: string, options: ManagerOptions) => {
    optionsOf.set(name, options);
    const m = await spawnManager(name, options, join(dir, `${name}.log`));
    managers.push(m);
    return m;
  };
  const cluster: Cluster = {
    managers,
    etcd,
    restart: async (m) => {
      managers.splice(managers.indexOf(m), 1);
      return start(m.name, optionsOf.get(m.name)!);
    },
    stop: async () => {
      liveClusters.delete(cluster);
      await Promise.all(managers.map((m) => m.stop()));
      childrenCpuMs += etcd.reduce((n, e) => n + processCpuMs(e.pid), 0);
      await Promise.all(etcd.map((e) => e.stop()));
    },
  };
  const managerOptions = async (name: string): Promise<ManagerOptions> => {
    const dataDir = join(dir, name);
    mkdirSync(dataDir, { recursive: true });
    return { dataDir, listen: [`127.0.0.1:${await freePort()}`], joinRate: JOIN_RATE, hostname: name };
  };
  liveClusters.add(cluster);
  try {
    if (kind === "sqlite") {
      await start("m1", await managerOptions("m1"));
      return cluster;
    }
    const { members, store } = await startBenchEtcd(dir, ["e1", "e2", "e3"]);
    etcd.push(...members);
    progress.note(`  etcd: ${etcd.map((e) => `${e.name} ${e.clientUrl}`).join(", ")}`);
    // m1 first: it takes the CA into the store; then the others together
    await start("m1", { ...(await managerOptions("m1")), store });
    await Promise.all(["m2", "m3"].map(async (name) => start(name, { ...(await managerOptions(name)), store })));
    managers.sort((a, b) => a.name.localeCompare(b.name));
    return cluster;
  } catch (err) {
    await cluster.stop();
    throw err;
  }
}

// ---- failover ----------------------------------------------------------------------

interface FailoverResult {
  killed: string;
  /** Why that one: the leader ListManagers reported, or the only manager. */
  chosen: string;
  /** From the kill until a write was accepted; null if none was within FAILOVER_LIMIT_MS. */
  firstWriteAcceptedMs: number | null;
  acceptedBy?: string;
  attempts: number;
  /** Failed attempts by gRPC status code. */
  refused: Record<string, number>;
  /**
   * From the kill until a scale-up sent right after it (made again until accepted) has its new
   * task scheduled, as a survivor lists it: the leader's work (orchestrator, scheduler) resumed.
   */
  scaledMs?: number;
  /** etcd: from the kill until a survivor reported another leader. */
  newLeaderMs?: number;
  newLeader?: string;
  /** SQLite: from the kill until the restarted manager listened again. */
  restartedMs?: number;
}

/** The leader as manager `m` reports it (ListManagers); undefined while it reports none. */
async function reportedLeader(m: ManagerProcess): Promise<string | undefined> {
  const r = await call(m.client, "listManagers", {}, { deadline: Date.now() + 1000 });
  return r.managers.find((x) => x.leader)?.hostname;
}

/** Which manager the failover kills: the leader, as the managers report it (ListManagers), waiting up to 10 s for one. */
async function victimOf(managers: ManagerProcess[]): Promise<{ victim: ManagerProcess; chosen: string }> {
  const first = managers[0]!;
  if (managers.length === 1) return { victim: first, chosen: "the only manager" };
  const deadline = now() + 10_000;
  try {
    while (now() < deadline) {
      const name = await reportedLeader(first);
      const leader = managers.find((m) => m.name === name);
      if (leader) return { victim: leader, chosen: "the leader ListManagers reported" };
      await sleep(100);
    }
    return { victim: first, chosen: `${first.name}: no manager reported a leader within 10 s` };
  } catch (err) {
    return { victim: first, chosen: `${first.name}: ListManagers failed (${codeOf(err) === GRPC_UNIMPLEMENTED ? "not implemented" : (err as Error).message})` };
  }
}

async function failover(cluster: Cluster, fleet: Fleet, progress: Progress, scaleService: string): Promise<FailoverResult> {
  const { victim, chosen } = await victimOf(cluster.managers);
  const survivors = cluster.managers.filter((m) => m !== victim);
  progress.note(`  failover: killing ${victim.name} (${chosen})`);

  fleet.expectClosures();
  const t0 = now();
  victim.kill();
  const result: FailoverResult = { killed: victim.name, chosen, firstWriteAcceptedMs: null, attempts: 0, refused: {} };
  // SQLite: the same manager again at once; its writes go to it once it listens
  const restarted = survivors.length === 0 ? cluster.restart(victim).then((m) => ((result.restartedMs = now() - t0), m)) : undefined;
  const targets = survivors.length > 0 ? survivors : [victim];

  let accepted = false;
  const attempt = async (k: number) => {
    const target = targets[k % targets.length]!;
    // a new connection each time: a connection's reconnect backoff (grpc-js: 1 s and up) is not the manager's
    const c = clusterClient(target.address, credentialsFromDir(target.adminTlsDir), { ownConnection: true });
    try {
      const spec = { name: `failover${pad(k, 3)}`, driver: "overlay", ipam: [{ subnet: `10.${200 + (k >> 8)}.${k & 255}.0/24` }] };
      await call(c, "createNetwork", { spec }, { deadline: Date.now() + FAILOVER_CALL_DEADLINE_MS });
      if (!accepted) {
        accepted = true;
        result.firstWriteAcceptedMs = now() - t0;
        result.acceptedBy = target.name;
      }
    } catch (err) {
      const code = String(codeOf(err) ?? "other");
      result.refused[code] = (result.refused[code] ?? 0) + 1;
    } finally {
      c.close();
    }
  };
  const newLeader = async () => {
    const deadline = t0 + FAILOVER_LIMIT_MS;
    while (now() < deadline) {
      for (const s of survivors) {
        const leader = await reportedLeader(s).catch(() => undefined);
        if (leader && leader !== victim.name) {
          result.newLeaderMs = now() - t0;
          result.newLeader = leader;
          return;
        }
      }
      await sleep(FAILOVER_EVERY_MS);
    }
  };
  const scaled = async (service: string) => {
    for (let k = 0; now() - t0 < FAILOVER_LIMIT_MS; k++) {
      const target = targets[k % targets.length]!;
      const c = clusterClient(target.address, credentialsFromDir(target.adminTlsDir), { ownConnection: true });
      const deadline = () => ({ deadline: Date.now() + FAILOVER_CALL_DEADLINE_MS });
      try {
        const current = (await call(c, "inspectService", { service }, deadline())).service!;
        const replicas = (current.spec!.replicated?.replicas ?? 0) + 1;
        const spec = { ...current.spec!, replicated: { replicas } } as wire.ServiceSpecInput;
        await call(c, "updateService", { service: current.id, version: current.version, spec }, deadline());
        while (now() - t0 < FAILOVER_LIMIT_MS) {
          const { tasks } = await call(c, "listTasks", { service }, deadline());
          if (tasks.filter((t) => t.desiredState === "running" && t.nodeId).length >= replicas) {
            result.scaledMs = now() - t0;
            return;
          }
          await sleep(FAILOVER_EVERY_MS);
        }
      } catch {
        await sleep(FAILOVER_EVERY_MS);
      } finally {
        c.close();
      }
    }
  };
  const watching = Promise.all([survivors.length > 0 ? newLeader() : undefined, scaled(scaleService)]);
  const inFlight: Promise<void>[] = [];
  while (!accepted && now() - t0 < FAILOVER_LIMIT_MS) {
    inFlight.push(attempt(result.attempts++));
    await sleep(FAILOVER_EVERY_MS);
  }
  await Promise.all([...inFlight, watching]);
  await restarted;
  return result;
}

// ---- one round: a setup at one size ------------------------------------------------------

interface RoundResult {
  setup: SetupKind;
  managers: number;
  agents: number;
  services: number;
  replicas: number;
  tasks: number;
  agentsConnectMs: number;
  /**
   * retried: joins or registrations refused and made again (Fleet.retried); reconnected: sessions
   * a manager closed, opened again (Fleet.reconnected, the failover's excepted); the first few reasons.
   */
  agentSessions: { retried: number; reconnected: number; first: string[] };
  /** rpcMs: each CreateService until accepted, retries included; retried: calls answered UNAVAILABLE and made again. */
  create: { servicesPerSecond: number; ms: number; rpcMs: ReturnType<typeof summarize>; retried: number; allRunningMs: number; allViewsCompleteMs: number };
  /** CPU (% of one core) from the first create until every view was complete. */
  createCpuPct: { managers: number; etcd: number };
  scale: {
    operations: number;
    timeouts: number;
    /** Operations whose UpdateService was answered UNAVAILABLE and made again. */
    retried: number;
    sessionsPerOperation: { min: number; mean: number };
    toLastSessionMs: ReturnType<typeof summarize>;
    toFirstSessionMs: ReturnType<typeof summarize>;
    updateServiceRpcMs: ReturnType<typeof summarize>;
    samples: (ScaleSample & { via: string })[];
  };
  memory: { managers: { name: string; rssMb: number; peakRssMb: number; heapMb: number }[]; etcd: { name: string; rssMb: number }[] };
  failover?: FailoverResult;
}

async function runRound(kind: SetupKind, r: Round, dir: string, progress: Progress, setText: (f: () => string) => void): Promise<RoundResult> {
  const label = kind === "sqlite" ? "SQLite, 1 manager" : "etcd, 3 managers";
  progress.note(`${label}: ${r.agents} sessions, ${r.services} services × ${r.replicas}`);
  setText(() => `${label}: starting`);
  const cluster = await startCluster(kind, dir, progress);
  const fleet = new Fleet();
  try {
    const ms = cluster.managers;
    const n = ms.length;
    progress.note(`  managers: ${ms.map((m) => `${m.name} ${m.address} (pid ${m.pid})`).join(", ")}`);
    const token = (await call(ms[0]!.client, "getJoinToken", { role: "worker" })).token;

    // 1. agents, round robin over the managers
    const t0 = now();
    setText(() => `${label}: agents ${fleet.connected}/${r.agents}`);
    await fleet.connect(r.agents, { address: (i) => ms[i % n]!.address, token, ownConnection: true, reconnect: true });
    const agentsConnectMs = now() - t0;
    progress.note(`  ${r.agents} agents connected in ${secs(agentsConnectMs)}${fleet.retried.length ? `; ${fleet.retried.length} joins or registrations refused and made again, first: ${fleet.retried[0]}` : ""}`);

    // 2. networks, services
    const networkIds: string[] = [];
    for (let k = 0; k < NETWORKS; k++) {
      const res = await call(ms[k % n]!.client, "createNetwork", { spec: { name: `bench${pad(k, 2)}`, driver: "overlay", ipam: [{ subnet: `10.${k + 1}.0.0/20` }] } });
      networkIds.push(res.network!.id);
    }
    const tasksOnNetwork = new Map<string, number>();
    for (let i = 0; i < r.services; i++) tasksOnNetwork.set(networkIds[i % NETWORKS]!, (tasksOnNetwork.get(networkIds[i % NETWORKS]!) ?? 0) + r.replicas);
    const tasks = r.services * r.replicas;
    let created = 0;
    setText(() => `${label}: creating services ${created}/${r.services}`);
    const createLatencies: number[] = [];
    const createRetried = { count: 0 };
    const cpu0 = { managers: ms.reduce((a, m) => a + m.cpuMs(), 0), etcd: cluster.etcd.reduce((a, e) => a + processCpuMs(e.pid), 0) };
    const tCreate0 = now();
    await pool(r.services, CREATE_CONCURRENCY, async (i) => {
      const spec: wire.ServiceSpecInput = {
        annotations: { name: `svc${pad(i, 4)}` },
        taskTemplate: { container: { command: ["vipmesh", "whoami"] } },
        replicated: { replicas: r.replicas },
        networks: [{ target: `bench${pad(i % NETWORKS, 2)}` }],
      };
      const t = now();
      await retryUnavailable(() => call(ms[i % n]!.client, "createService", { spec }), createRetried);
      createLatencies.push(now() - t);
      created++;
    });
    const createMs = now() - tCreate0;
    fleet.alive();
    progress.note(`  ${r.services} services created in ${secs(createMs)}${createRetried.count ? ` (${createRetried.count} calls answered UNAVAILABLE and made again)` : ""}`);
    const limit = Math.max(60_000, r.services * 60);
    setText(() => `${label}: tasks running ${fleet.countRunning()}/${tasks}`);
    const tRunning = await until(`${tasks} running tasks`, () => fleet.countRunning() >= tasks, limit, 20);
    setText(() => `${label}: views complete ${fleet.countComplete(tasksOnNetwork)}/${r.agents}`);
    const tComplete = await until("every agent view complete", () => fleet.countComplete(tasksOnNetwork) === r.agents, limit, 20);
    const createWall = tComplete - tCreate0;
    const createCpuPct = {
      managers: round(((ms.reduce((a, m) => a + m.cpuMs(), 0) - cpu0.managers) / createWall) * 100),
      etcd: round(((cluster.etcd.reduce((a, e) => a + processCpuMs(e.pid), 0) - cpu0.etcd) / createWall) * 100),
    };
    fleet.alive();
    progress.note(`  every agent view complete ${secs(createWall)} after the first create`);

    // 3. scale → every session
    const rand = seededRandom(1);
    const samples: (ScaleSample & { via: string })[] = [];
    const scaleRetried = { count: 0 };
    let service = "";
    let serviceIndex = 0;
    setText(() => `${label}: scale ${samples.length}/${r.scales}`);
    for (let op = -r.warmup; op < r.scales; op++) {
      const direction: "up" | "down" = (op + r.warmup) % 2 === 0 ? "up" : "down";
      if (direction === "up") {
        serviceIndex = Math.floor(rand() * r.services);
        service = `svc${pad(serviceIndex, 4)}`;
      }
      const via = ms[(op + r.warmup) % n]!;
      const operation = {
        op,
        service,
        networkId: networkIds[serviceIndex % NETWORKS]!,
        direction,
        replicas: direction === "up" ? r.replicas + 1 : r.replicas,
        opTimeoutMs: SCALE_TIMEOUT_MS,
      };
      const { sample, seen } = await retryUnavailable(() => scaleOnce(via.client, fleet, operation), scaleRetried);
      if (sample.timedOut) progress.note(`  op ${op} (${service} ${direction} via ${via.name}): only ${seen}/${sample.sessions} sessions saw the change within ${SCALE_TIMEOUT_MS} ms`);
      if (op >= 0) samples.push({ ...sample, via: via.name });
    }
    const ok = samples.filter((s) => !s.timedOut);
    const sessions = samples.map((s) => s.sessions);
    const scale = {
      operations: samples.length,
      timeouts: samples.length - ok.length,
      retried: scaleRetried.count,
      sessionsPerOperation: { min: Math.min(...sessions), mean: round(sessions.reduce((a, b) => a + b, 0) / sessions.length) },
      toLastSessionMs: summarize(ok.map((s) => s.lastMs)),
      toFirstSessionMs: summarize(samples.filter((s) => !Number.isNaN(s.firstMs)).map((s) => s.firstMs)),
      updateServiceRpcMs: summarize(samples.map((s) => s.rpcMs)),
      samples,
    };
    progress.note(`  scale → every session: p50 ${fmtMs(scale.toLastSessionMs.p50Ms)}, p99 ${fmtMs(scale.toLastSessionMs.p99Ms)}${scale.timeouts ? `, ${scale.timeouts} timed out` : ""}${fleet.reconnected.length ? `; ${fleet.reconnected.length} sessions closed by a manager and opened again so far, first: ${fleet.reconnected[0]}` : ""}`);

    // 4. memory
    setText(() => `${label}: memory`);
    const memory = {
      managers: await Promise.all(ms.map(async (m) => ({ name: m.name, ...rss(m.pid), heapMb: round(await m.heapMb()) }))),
      etcd: cluster.etcd.map((e) => ({ name: e.name, rssMb: round(processRssMb(e.pid).rssMb) })),
    };

    // 5. failover
    setText(() => `${label}: failover`);
    const failed = r.failover ? await failover(cluster, fleet, progress, "svc0000") : undefined;
    if (failed) progress.note(`  failover: first write accepted ${fmtMs(failed.firstWriteAcceptedMs ?? undefined)} after the kill; a scale-up's task scheduled after ${fmtMs(failed.scaledMs)}${failed.newLeader ? `; ${failed.newLeader} reported leader after ${fmtMs(failed.newLeaderMs)}` : ""}`);

    return {
      setup: kind,
      managers: n,
      agents: r.agents,
      services: r.services,
      replicas: r.replicas,
      tasks,
      agentsConnectMs: round(agentsConnectMs),
      agentSessions: { retried: fleet.retried.length, reconnected: fleet.reconnected.length, first: [...fleet.retried, ...fleet.reconnected].slice(0, 3) },
      create: {
        servicesPerSecond: round(r.services / (createMs / 1000)),
        ms: round(createMs),
        rpcMs: summarize(createLatencies),
        retried: createRetried.count,
        allRunningMs: round(tRunning - tCreate0),
        allViewsCompleteMs: round(tComplete - tCreate0),
      },
      createCpuPct,
      scale,
      memory,
      ...(failed ? { failover: failed } : {}),
    };
  } finally {
    fleet.stop();
    await cluster.stop();
  }
}

const failoverPass = (f: FailoverResult | undefined) => f?.firstWriteAcceptedMs != null && f.firstWriteAcceptedMs <= FAILOVER_TARGET_MS;
/** A write from any manager is accepted without a leader: the takeover is when the new leader's orchestrator acts. */
const takeoverPass = (f: FailoverResult | undefined) => f?.scaledMs !== undefined && f.scaledMs <= FAILOVER_TARGET_MS;

// ---- the report ----------------------------------------------------------------------

/** One line: a label, then the SQLite and etcd columns. */
const row = (label: string, sqlite: string, etcd: string) => `  ${label.padEnd(48)}${sqlite.padStart(26)}${etcd.padStart(26)}`;

function report(o: Options, results: RoundResult[], othersPct: number): string[] {
  const lines: string[] = [];
  const find = (kind: SetupKind, agents: number) => results.find((x) => x.setup === kind && x.agents === agents);
  const col = (x: RoundResult | undefined, f: (x: RoundResult) => string) => (x ? f(x) : "—");
  lines.push(`vipmesh HA benchmark — ${new Date().toISOString()}, node ${process.version}, ${cpus().length} CPU(s)`);
  lines.push(`command: npx tsx bench/ha.ts ${process.argv.slice(2).join(" ")}`.trimEnd());
  lines.push(
    `setups:  SQLite: one manager process; etcd: 3 members (mutual TLS, heartbeat ${LOADED_MACHINE_TIMING.heartbeatMs} ms, election ${LOADED_MACHINE_TIMING.electionMs} ms) and 3 manager processes; agents round robin over the managers, each its own connection`,
  );
  lines.push(`machine: other processes used ${othersPct.toFixed(0)}% of the ${cpus().length} CPUs during the run${othersPct > 10 ? " — WARNING: a busy machine; the figures below are not reliable" : ""}`);
  for (const r of ROUNDS[o.mode]) {
    const [s, e] = [find("sqlite", r.agents), find("etcd", r.agents)];
    lines.push("");
    lines.push(`${r.agents} sessions, ${r.services} services × ${r.replicas} replicas on ${NETWORKS} networks`);
    lines.push(row("", "SQLite", "etcd"));
    lines.push(row("agents joined and connected", col(s, (x) => fmtMs(x.agentsConnectMs)), col(e, (x) => fmtMs(x.agentsConnectMs))));
    const sessions = (x: RoundResult) => `${x.agentSessions.retried} / ${x.agentSessions.reconnected}`;
    lines.push(row("  joins refused and retried / sessions reopened", col(s, sessions), col(e, sessions)));
    lines.push(row("create (services/s)", col(s, (x) => x.create.servicesPerSecond.toFixed(1)), col(e, (x) => x.create.servicesPerSecond.toFixed(1))));
    lines.push(row("  CreateService RPC p50 / p99", col(s, (x) => `${fmtMs(x.create.rpcMs.p50Ms)} / ${fmtMs(x.create.rpcMs.p99Ms)}`), col(e, (x) => `${fmtMs(x.create.rpcMs.p50Ms)} / ${fmtMs(x.create.rpcMs.p99Ms)}`)));
    lines.push(row("  CreateService answered UNAVAILABLE, made again", col(s, (x) => String(x.create.retried)), col(e, (x) => String(x.create.retried))));
    lines.push(row("  every view complete after the first create", col(s, (x) => fmtMs(x.create.allViewsCompleteMs)), col(e, (x) => fmtMs(x.create.allViewsCompleteMs))));
    lines.push(row("  CPU meanwhile: managers / etcd (% of a core)", col(s, (x) => `${x.createCpuPct.managers} / —`), col(e, (x) => `${x.createCpuPct.managers} / ${x.createCpuPct.etcd}`)));
    const ops = (x: RoundResult) =>
      `${x.scale.operations} ops, ${x.scale.sessionsPerOperation.mean} sessions${x.scale.timeouts ? `, ${x.scale.timeouts} TIMED OUT` : ""}${x.scale.retried ? `, ${x.scale.retried} retried` : ""}`;
    lines.push(row("scale → every session p50", col(s, (x) => fmtMs(x.scale.toLastSessionMs.p50Ms)), col(e, (x) => fmtMs(x.scale.toLastSessionMs.p50Ms))));
    lines.push(row("scale → every session p99", col(s, (x) => fmtMs(x.scale.toLastSessionMs.p99Ms)), col(e, (x) => fmtMs(x.scale.toLastSessionMs.p99Ms))));
    lines.push(row("  UpdateService RPC p50 / p99", col(s, (x) => `${fmtMs(x.scale.updateServiceRpcMs.p50Ms)} / ${fmtMs(x.scale.updateServiceRpcMs.p99Ms)}`), col(e, (x) => `${fmtMs(x.scale.updateServiceRpcMs.p50Ms)} / ${fmtMs(x.scale.updateServiceRpcMs.p99Ms)}`)));
    lines.push(row("  operations, mean sessions each", col(s, ops), col(e, ops)));
    const mem = (f: (m: RoundResult["memory"]["managers"][number]) => number) => (x: RoundResult) => x.memory.managers.map((m) => fmtMb(f(m))).join(" ");
    lines.push(row("manager RSS (each)", col(s, mem((m) => m.rssMb)), col(e, mem((m) => m.rssMb))));
    lines.push(row("manager JS heap after GC (each)", col(s, mem((m) => m.heapMb)), col(e, mem((m) => m.heapMb))));
    lines.push(row("etcd RSS (each)", "—", col(e, (x) => x.memory.etcd.map((m) => fmtMb(m.rssMb)).join(" "))));
    if (!r.failover) continue;
    const fo = (x: RoundResult) => (!x.failover ? "—" : x.failover.firstWriteAcceptedMs === null ? "none accepted" : fmtMs(x.failover.firstWriteAcceptedMs));
    lines.push(row("failover: killed → first write accepted", col(s, fo), col(e, fo)));
    lines.push(row("  what was killed", col(s, () => "the manager (restarted)"), col(e, (x) => `${x.failover?.killed} (${x.failover?.chosen.startsWith("the leader") ? "leader" : x.failover?.chosen})`)));
    lines.push(row("  killed → a scale-up's new task scheduled", col(s, (x) => fmtMs(x.failover?.scaledMs)), col(e, (x) => fmtMs(x.failover?.scaledMs))));
    lines.push(row("  restarted and listening / new leader reported", col(s, (x) => fmtMs(x.failover?.restartedMs)), col(e, (x) => (x.failover?.newLeader ? `${x.failover.newLeader} ${fmtMs(x.failover.newLeaderMs)}` : "—"))));
    if (e) {
      lines.push(`target: failover (killed → first write accepted) ≤ ${FAILOVER_TARGET_MS / 1000} s on etcd: ${failoverPass(e.failover) ? "PASS" : "FAIL"} (${e.failover ? fo(e) : "not measured"})`);
      lines.push(`target: takeover (killed → a scale-up's task scheduled) ≤ ${FAILOVER_TARGET_MS / 1000} s on etcd: ${takeoverPass(e.failover) ? "PASS" : "FAIL"} (${fmtMs(e.failover?.scaledMs)})`);
    }
  }
  return lines;
}

// ---- main ------------------------------------------------------------------------------

async function main(): Promise<number> {
  const o = parseOptions(process.argv.slice(2));
  const dir = tempDir("vipmesh-bench-ha-");
  let text = () => "starting";
  const progress = new Progress(() => text());
  const setText = (f: () => string) => (text = f);
  const cleanup = async () => {
    progress.stop();
    await Promise.allSettled([...liveClusters].map((c) => c.stop()));
    dir.remove();
  };
  const abort = (why: string, code: number) => {
    aborting = true;
    console.error(`\nha bench: ${why}: cleaning up`);
    void cleanup().finally(() => process.exit(code));
  };
  const watchdog = setTimeout(() => abort(`aborted after ${o.timeoutS} s`, 2), o.timeoutS * 1000);
  watchdog.unref();
  // a reader that went away (`| head`) must not kill the run before it cleans up
  process.stdout.on("error", () => {});
  for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) process.once(signal, () => abort(signal, code));

  try {
    progress.start();
    const t0 = now();
    const machine0 = machineBusyMs();
    const self0 = process.cpuUsage();
    const results: RoundResult[] = [];
    for (const [i, r] of ROUNDS[o.mode].entries()) {
      for (const kind of o.setups) {
        const roundDir = join(dir.path, `${kind}-${i}`);
        mkdirSync(roundDir);
        results.push(await runRound(kind, r, roundDir, progress, setText));
      }
    }
    progress.stop();
    const wallMs = now() - t0;
    const self = process.cpuUsage(self0);
    const ours = (self.user + self.system) / 1000 + childrenCpuMs;
    const othersPct = Math.max(0, ((machineBusyMs() - machine0 - ours) / (wallMs * cpus().length)) * 100);
    process.stdout.write(`${report(o, results, othersPct).join("\n")}\n`);

    const etcdFailover = results.find((x) => x.setup === "etcd" && x.failover)?.failover;
    const result = {
      benchmark: "ha",
      at: new Date().toISOString(),
      node: process.version,
      cpus: cpus().length,
      mode: o.mode,
      command: `npx tsx bench/ha.ts ${process.argv.slice(2).join(" ")}`.trimEnd(),
      otherProcessesCpuPct: round(othersPct),
      wallMs: round(wallMs),
      etcdTiming: LOADED_MACHINE_TIMING,
      rounds: results,
      target: { failoverMs: FAILOVER_TARGET_MS, pass: failoverPass(etcdFailover), takeoverPass: takeoverPass(etcdFailover) },
    };
    mkdirSync(dirname(o.out), { recursive: true });
    writeFileSync(o.out, `${JSON.stringify(result, null, 2)}\n`);
    process.stderr.write(`results written to ${o.out}\n`);
    return 0;
  } finally {
    clearTimeout(watchdog);
    await cleanup();
  }
}

if (process.argv.includes(CHILD_FLAG)) {
  void managerChild();
} else {
  main().then(
    (code) => {
      process.exitCode = code;
      setTimeout(() => process.exit(code), 3000).unref();
    },
    (err: unknown) => {
      if (aborting) return;
      console.error(`\nha bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      process.exitCode = 1;
      setTimeout(() => process.exit(1), 3000).unref();
    },
  );
}
