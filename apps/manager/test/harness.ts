// A real manager on 127.0.0.1:0 with a temp data dir, real clients, and
// simulated agents speaking the real dispatcher protocol.

import { call, clusterClient, type ClusterServiceClient, credentialsFromDir, statusName, type wire } from "@vipmesh/api";
import { canonicalJson } from "@vipmesh/core";
import { type DockerTarget, SimAgent, type SimAgentOptions, tempDir, waitFor } from "@vipmesh/testing";
import { type JoinRate, type RunningManager, startManager } from "../src/index.ts";

export const HEARTBEAT_MS = 100;

export interface Harness {
  address: string;
  /** The worker join token every added agent joins with. */
  token: string;
  dataDir: string;
  client: ClusterServiceClient;
  agents: SimAgent[];
  manager: RunningManager;
  /**
   * With `dockerApi`: the Engine API as the docker CLI reaches it — the unix
   * socket, TCP with the admin identity, TCP with the read-only one.
   */
  docker: { unix: DockerTarget; tls: DockerTarget; readonly: DockerTarget } | undefined;
  addAgent(hostname: string, options?: Partial<SimAgentOptions>): Promise<SimAgent>;
  restart(): Promise<void>;
  close(): Promise<void>;
}

let nextAddr = 1;

/** Tests join many simulated agents from 127.0.0.1 with one token at once; the join limit has its own test. */
const TEST_JOIN_RATE: JoinRate = { count: 1000, windowMs: 60_000 };

export async function startHarness(
  options: {
    addressPool?: string;
    heartbeatPeriodMs?: number;
    keyRotationMs?: number;
    joinRate?: JoinRate;
    allowLoopbackNodes?: boolean;
    /** Serve the Docker Engine API on a unix socket in the data dir and on 127.0.0.1 (TLS): see Harness.docker. */
    dockerApi?: boolean;
  } = {},
): Promise<Harness> {
  const dir = tempDir();
  const start = () =>
    startManager({
      dataDir: dir.path,
      listen: ["127.0.0.1:0"],
      heartbeatPeriodMs: options.heartbeatPeriodMs ?? HEARTBEAT_MS,
      restartDelayMs: 50,
      addressPool: options.addressPool,
      keyRotationMs: options.keyRotationMs,
      joinRate: options.joinRate ?? TEST_JOIN_RATE,
      allowLoopbackNodes: options.allowLoopbackNodes,
      ...(options.dockerApi ? { dockerApi: [`unix:${dir.path}/docker.sock`, "tcp://127.0.0.1:0"] } : {}),
    });
  const dockerTargets = (m: RunningManager): Harness["docker"] => {
    if (!options.dockerApi) return undefined;
    const tcp = m.dockerApi.find((a) => a.startsWith("tcp://"))!;
    return {
      unix: { host: m.dockerApi.find((a) => a.startsWith("unix://"))! },
      tls: { host: tcp, certDir: m.adminTlsDir! },
      readonly: { host: tcp, certDir: m.readonlyTlsDir! },
    };
  };
  let manager = await start();
  const admin = () => clusterClient(manager.addresses[0]!, credentialsFromDir(manager.adminTlsDir!));
  const h: Harness = {
    address: manager.addresses[0]!,
    token: "",
    dataDir: dir.path,
    client: admin(),
    agents: [],
    manager,
    docker: dockerTargets(manager),
    async addAgent(hostname, options = {}) {
      const agent = new SimAgent(h.address, { hostname, addr: `192.0.2.${nextAddr++ % 250}`, token: h.token, ...options });
      await agent.start();
      h.agents.push(agent);
      return agent;
    },
    async restart() {
      for (const a of h.agents) a.stop();
      h.agents = [];
      h.client.close();
      await manager.stop();
      manager = await start();
      h.manager = manager;
      h.docker = dockerTargets(manager);
      h.address = manager.addresses[0]!;
      h.client = admin();
    },
    async close() {
      for (const a of h.agents) a.stop();
      h.client.close();
      await manager.stop();
      dir.remove();
    },
  };
  h.token = (await call(h.client, "getJoinToken", { role: "worker" })).token;
  return h;
}

export const tasksOf = async (h: Harness, service: string): Promise<wire.Task[]> =>
  (await call(h.client, "listTasks", { service })).tasks;

export const liveTasks = async (h: Harness, service: string) =>
  (await tasksOf(h, service)).filter((t) => t.desiredState === "running" && t.status?.state === "running");

export function serviceSpec(name: string, extra: Record<string, unknown> = {}): wire.ServiceSpecInput {
  return {
    annotations: { name },
    taskTemplate: { container: { command: ["vipmesh", "whoami"] } },
    replicated: { replicas: 3 },
    ...extra,
  } as wire.ServiceSpecInput;
}

/** Everything the manager holds, for before/after comparisons. */
export async function everything(h: Harness) {
  const [nodes, networks, services, tasks] = await Promise.all([
    call(h.client, "listNodes", {}),
    call(h.client, "listNetworks", {}),
    call(h.client, "listServices", {}),
    call(h.client, "listTasks", {}),
  ]);
  return { nodes: nodes.nodes, networks: networks.networks, services: services.services, tasks: tasks.tasks };
}

/** The gRPC status name a call fails with. */
export async function failure(p: Promise<unknown>): Promise<{ code: string; details: string }> {
  try {
    await p;
  } catch (err) {
    const e = err as { code?: number; details?: string };
    return { code: statusName(e.code), details: e.details ?? "" };
  }
  throw new Error("the call succeeded but was expected to fail");
}

/** Waits until the service has `n` running tasks of its current spec. */
export async function waitRunning(h: Harness, service: string, n: number): Promise<wire.Task[]> {
  return waitFor(`${n} running tasks of ${service}`, async () => {
    const s = (await call(h.client, "inspectService", { service })).service!;
    const t = (await tasksOf(h, service)).filter(
      (t) => t.desiredState === "running" && t.status?.state === "running" && canonicalJson(t.spec) === canonicalJson(s.spec?.taskTemplate),
    );
    const stopping = (await tasksOf(h, service)).filter((t) => t.desiredState === "shutdown" && !["shutdown", "orphaned", "failed", "complete", "rejected"].includes(t.status!.state));
    return t.length === n && stopping.length === 0 ? t : undefined;
  });
}

export { call, waitFor };
