// What the control-plane benchmarks share (control-plane.ts, ha.ts): a fleet
// of simulated agents on one manager or several, whether their views have
// converged, and one timed scale operation (UpdateService → the last session
// whose view holds the service's network has the change).

import { call, type ClusterServiceClient, type wire } from "@vipmesh/api";
import { isIngressSandboxEndpoint } from "@vipmesh/core";
import { SimAgent } from "@vipmesh/testing";
import { performance } from "node:perf_hooks";

export const now = () => performance.now();
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
export const pad = (n: number, width: number) => String(n).padStart(width, "0");

/** Polls `check` every `everyMs` until it is true; throws after `timeoutMs`. */
export async function until(what: string, check: () => boolean, timeoutMs: number, everyMs = 5): Promise<number> {
  const deadline = now() + timeoutMs;
  for (;;) {
    if (check()) return now();
    if (now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** Runs `fn(i)` for i in [0, n) with at most `limit` in flight. */
export async function pool(n: number, limit: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < n) await fn(next++);
  };
  await Promise.all(Array.from({ length: Math.min(limit, n) }, worker));
}

// ---- progress (stderr) ---------------------------------------------------------

export class Progress {
  private last = "";
  private readonly tty = Boolean(process.stderr.isTTY);
  private timer: NodeJS.Timeout | undefined;
  private readonly started = now();

  constructor(private readonly describe: () => string) {}

  start(): void {
    this.timer = setInterval(() => this.print(false), this.tty ? 250 : 2000);
    this.timer.unref();
  }

  print(force: boolean): void {
    const line = `[${((now() - this.started) / 1000).toFixed(1).padStart(6)} s] ${this.describe()}`;
    if (!force && line === this.last) return;
    this.last = line;
    if (this.tty) process.stderr.write(`\r\x1b[K${line}`);
    else process.stderr.write(`${line}\n`);
  }

  /** A line that stays (a phase finished). */
  note(text: string): void {
    if (this.tty) process.stderr.write(`\r\x1b[K`);
    process.stderr.write(`${text}\n`);
  }

  stop(): void {
    clearInterval(this.timer);
    if (this.tty) process.stderr.write(`\r\x1b[K`);
  }
}

// ---- agents --------------------------------------------------------------------

export const hostnameOf = (i: number) => `node${pad(i + 1, 3)}`;
/**
 * Underlay addresses: labels only, nothing is sent to them. From RFC 2544's
 * benchmarking range, half the agents in 198.18/16 and half in 198.19/16 (two
 * underlay subnets, as nodes in two racks).
 */
export const agentAddr = (i: number, total: number) => {
  const half = Math.ceil(total / 2);
  const j = i < half ? i : i - half;
  return `198.${i < half ? 18 : 19}.${Math.floor(j / 254)}.${(j % 254) + 1}`;
};

export interface Tracked {
  agent: SimAgent;
  index: number;
  assignments: number;
}

const START_ATTEMPTS = 5;

/** Simulated agents, each with its own session; a closed session is an error unless the fleet is told to expect it. */
export class Fleet {
  readonly tracked: Tracked[] = [];
  connected = 0;
  lastAssignmentAt = now();
  /** Set during a scale operation: sees every assignment as it arrives. */
  probe: ((t: Tracked, a: wire.Assignment, at: number) => void) | undefined;
  /** Joins or registrations a manager refused and the agent made again, as a real agent does after its backoff: why each. */
  readonly retried: string[] = [];
  /** Sessions a manager closed that the agent opened again (with `reconnect`): why each closed. */
  readonly reconnected: string[] = [];
  private readonly closedUnexpectedly: string[] = [];
  private closing = false;

  /**
   * Agents 0..count-1, agent i on the manager at `address(i)`, 10 joining at a time; each tries
   * up to 5 times. `reconnect`: a session the manager closes is opened again by a new agent on
   * the same identity (a real agent's new session: registered again, its tasks reported from the
   * full view), instead of failing the run.
   */
  async connect(count: number, o: { address: (i: number) => string; token: string; ownConnection: boolean; reconnect?: boolean }): Promise<void> {
    const options = (i: number) => ({ hostname: hostnameOf(i), addr: agentAddr(i, count), ownConnection: o.ownConnection });
    const start = async (t: Tracked, agent: SimAgent) => {
      t.agent = agent;
      agent.on("assignment", (a) => {
        const at = now();
        t.assignments++;
        this.lastAssignmentAt = at;
        this.probe?.(t, a, at);
      });
      agent.on("closed", (err) => {
        if (this.closing || t.agent !== agent) return;
        const why = `${hostnameOf(t.index)}: ${err?.message ?? "session ended"}`;
        if (!o.reconnect || !agent.identity) return void this.closedUnexpectedly.push(why);
        this.reconnected.push(why);
        agent.stop();
        const again = new SimAgent(agent.address, { ...options(t.index), identity: agent.identity });
        start(t, again).catch((e: unknown) => this.closedUnexpectedly.push(`${why}; opening it again failed: ${e instanceof Error ? e.message : String(e)}`));
      });
      for (let attempt = 1; ; attempt++) {
        try {
          await agent.start();
          return;
        } catch (err) {
          if (attempt === START_ATTEMPTS || this.closing) throw err;
          this.retried.push(`${hostnameOf(t.index)}: ${err instanceof Error ? err.message : String(err)}`);
          await sleep(200 * attempt);
        }
      }
    };
    await pool(count, 10, async (i) => {
      const agent = new SimAgent(o.address(i), { token: o.token, ...options(i) });
      const t: Tracked = { agent, index: i, assignments: 0 };
      this.tracked[i] = t;
      await start(t, agent);
      this.connected++;
    });
  }

  /** Throws if a session closed that should not have. */
  alive(): void {
    if (this.closedUnexpectedly.length > 0) throw new Error(`sessions closed: ${this.closedUnexpectedly.slice(0, 3).join("; ")}`);
  }

  /** From now on sessions may close (a manager is about to be killed, or the run ends). */
  expectClosures(): void {
    this.closing = true;
  }

  stop(): void {
    this.closing = true;
    for (const t of this.tracked) t?.agent.stop();
  }

  /** Tasks running in the agents' views. */
  countRunning(): number {
    let n = 0;
    for (const t of this.tracked) {
      for (const task of t.agent.view.tasks.values()) {
        if (task.desiredState === "running" && task.status?.state === "running") n++;
      }
    }
    return n;
  }

  /** Agents whose view holds every endpoint of the networks it has, all ready (nothing left to send). */
  countComplete(tasksOnNetwork: ReadonlyMap<string, number>): number {
    let n = 0;
    for (const t of this.tracked) {
      let expected = 0;
      for (const id of t.agent.view.networks.keys()) expected += tasksOnNetwork.get(id) ?? 0;
      // task endpoints only: the node's own ingress sandbox (and, where published tasks run, every node's) is there too
      let ready = 0;
      let tasks = 0;
      for (const e of t.agent.view.endpoints.values()) {
        if (isIngressSandboxEndpoint(e)) continue;
        tasks++;
        if (e.ready) ready++;
      }
      if (ready === expected && tasks === expected) n++;
    }
    return n;
  }

  /** Waits until no assignment arrived for `q` ms (at most `cap` ms). */
  async quiet(q: number, cap: number): Promise<void> {
    const deadline = now() + cap;
    while (now() - this.lastAssignmentAt < q && now() < deadline) await sleep(2);
  }
}

// ---- one scale operation ---------------------------------------------------------------

export interface ScaleSample {
  op: number;
  service: string;
  direction: "up" | "down";
  sessions: number;
  firstMs: number;
  lastMs: number;
  rpcMs: number;
  inspectMs: number;
  timedOut: boolean;
}

export interface ScaleOperation {
  op: number;
  /** The service's name. */
  service: string;
  /** The ID of the network it is on: the sessions whose view has it are those timed. */
  networkId: string;
  direction: "up" | "down";
  replicas: number;
  opTimeoutMs: number;
}

/** The calls of a scale operation, each timed on the thread that makes it; times are on this thread's now(). */
export interface ScaleCalls {
  inspect(service: string): Promise<{ service: wire.Service; inspectMs: number }>;
  /** Sends UpdateService; resolves once it is answered, with when it was sent and how long the answer took. */
  update(service: string, version: number, spec: wire.ServiceSpecInput): Promise<{ sentAt: number; rpcMs: number }>;
}

/** The scale calls made through `c` on this thread. */
export function scaleCallsOf(c: ClusterServiceClient): ScaleCalls {
  return {
    inspect: async (service) => {
      const t0 = now();
      const current = (await call(c, "inspectService", { service })).service!;
      return { service: current, inspectMs: now() - t0 };
    },
    update: async (service, version, spec) => {
      const sentAt = now();
      await call(c, "updateService", { service, version, spec });
      return { sentAt, rpcMs: now() - sentAt };
    },
  };
}

const byServiceTasks = (view: SimAgent["view"], serviceId: string) => {
  const ids = new Set<string>();
  for (const e of view.endpoints.values()) if (e.serviceId === serviceId) ids.add(e.taskId);
  return ids;
};

/**
 * One scale operation through `c` (a client used on this thread, or the calls of a client on
 * another), as the CLI's `service scale` does it (read the service for its version and spec,
 * then update), timed from sending the update until every session whose view has the
 * service's network saw the change; then settled (the new endpoint ready everywhere, or the
 * removed one gone; no assignment for 10 ms) so that operations never overlap.
 * `seen`: how many sessions saw it (all of them unless it timed out).
 */
export async function scaleOnce(c: ClusterServiceClient | ScaleCalls, fleet: Fleet, s: ScaleOperation): Promise<{ sample: ScaleSample; seen: number }> {
  const calls = "update" in c ? c : scaleCallsOf(c);
  const { service: current, inspectMs } = await calls.inspect(s.service);
  const serviceId = current.id;
  const targets = new Set(fleet.tracked.filter((t) => t.agent.view.networks.has(s.networkId)));
  const sample = targets.values().next().value;
  const before = sample ? byServiceTasks(sample.agent.view, serviceId) : new Set<string>();

  let hits = 0;
  let firstAt = Number.NaN;
  let lastAt = Number.NaN;
  const changed = new Set<string>(); // endpoint keys that appeared (up) or went (down)
  /** Down: the keys each session saw go (a session that lost the network lost all its endpoints). */
  const removedFrom = new Map<Tracked, string[]>();
  const hit = new Set<Tracked>();
  let done!: () => void;
  const allSeen = new Promise<void>((r) => (done = r));
  fleet.probe = (t, a, at) => {
    if (!targets.has(t) || hit.has(t)) return;
    let seen = false;
    if (s.direction === "up") {
      for (const e of a.endpoints) {
        if (e.serviceId === serviceId && !before.has(e.taskId)) {
          seen = true;
          changed.add(e.key);
        }
      }
    } else {
      for (const key of a.removedEndpoints) {
        if (before.has(key.split("/")[0]!)) {
          seen = true;
          changed.add(key);
          removedFrom.set(t, [...(removedFrom.get(t) ?? []), key]);
        }
      }
    }
    if (!seen) return;
    hit.add(t);
    hits++;
    if (hits === 1) firstAt = at;
    if (hits === targets.size) {
      lastAt = at;
      done();
    }
  };

  const spec = { ...current.spec!, replicated: { replicas: s.replicas } } as wire.ServiceSpecInput;
  const updated = calls.update(serviceId, current.version, spec);
  let timedOut = false;
  await Promise.race([allSeen, sleep(s.opTimeoutMs).then(() => (timedOut = true))]);
  const { sentAt: t0, rpcMs } = await updated;
  fleet.probe = undefined;
  fleet.alive();

  // a new task is running (its endpoint ready everywhere), a removed one is gone
  const settled = () => {
    if (s.direction === "up") {
      for (const t of targets) for (const key of changed) if (!t.agent.view.endpoints.get(key)?.ready) return false;
      return true;
    }
    // (a stopped task stays in its own node's view, reported shut down: its endpoints are what go)
    return [...removedFrom].every(([t, keys]) => keys.every((key) => !t.agent.view.endpoints.has(key)));
  };
  await until(`${s.service} to settle`, settled, 10_000, 1).catch(() => {});
  await fleet.quiet(10, 1000);
  return {
    sample: {
      op: s.op,
      service: s.service,
      direction: s.direction,
      sessions: targets.size,
      firstMs: firstAt - t0,
      lastMs: timedOut ? Number.NaN : lastAt - t0,
      rpcMs,
      inspectMs,
      timedOut,
    },
    seen: hits,
  };
}
