// The control-plane bench's API client on a thread of its own: the CreateService calls of the
// create phase and the scale operations' InspectService and UpdateService, made from a worker
// thread with its own gRPC connection. A real client (the CLI, `docker stack deploy`) is its own
// process: on the simulated agents' thread each answer would wait behind hundreds of session
// messages, and the figures would measure the simulator rather than the manager.

import { call, clusterClient, type ClusterServiceClient, credentialsFromDir, type wire } from "@vipmesh/api";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { now, pool, type ScaleCalls, sleep } from "./fleet.ts";

const WORKER_ROLE = "vipmesh-bench-api-client";

/** A clock every thread of the process shares (performance.now() counts from each thread's start). */
const processClockMs = () => Number(process.hrtime.bigint()) / 1e6;
/** A time on processClockMs as this thread's now(). */
const localTime = (processMs: number) => processMs - (processClockMs() - now());

interface ClientConfig {
  role: typeof WORKER_ROLE;
  address: string;
  credentialsDir: string;
  ownConnection: boolean;
  /** One Int32: the CreateService calls answered so far, for the progress line. */
  created: SharedArrayBuffer;
}

type Request =
  | { kind: "create"; specs: wire.ServiceSpecInput[]; concurrency: number }
  | { kind: "inspect"; service: string }
  | { kind: "update"; service: string; version: number; spec: wire.ServiceSpecInput }
  | { kind: "stop" };

interface Question {
  id: number;
  req: Request;
}
interface Answer {
  id: number;
  result?: Result;
  error?: { message: string; code?: number };
}

/** Times are on processClockMs. */
type Result =
  | { startedAt: number; endedAt: number; latenciesMs: number[] }
  | { service: wire.Service; inspectMs: number }
  | { sentAt: number; rpcMs: number }
  | null;

export interface CreateRun {
  /** When the first call was sent and the last answered, on this thread's now(). */
  startedAt: number;
  endedAt: number;
  /** Each CreateService call's latency, ms. */
  latenciesMs: number[];
}

export interface ApiClientThread {
  /** Creates the services with `concurrency` calls in flight; a call that fails fails the run. */
  createServices(specs: wire.ServiceSpecInput[], concurrency: number): Promise<CreateRun>;
  /** CreateService calls answered so far. */
  created(): number;
  /** The scale operations' calls, made on the client's thread. */
  readonly scaleCalls: ScaleCalls;
  /** The client thread's event-loop utilization. */
  elu: Worker["performance"]["eventLoopUtilization"];
  stop(): Promise<void>;
}

/** Starts the client's thread: tsx registers its loader there again, then loads this file. */
export async function startApiClientThread(address: string, credentialsDir: string, ownConnection: boolean): Promise<ApiClientThread> {
  const api = import.meta.resolve("tsx/esm/api");
  const created = new SharedArrayBuffer(4);
  const config: ClientConfig = { role: WORKER_ROLE, address, credentialsDir, ownConnection, created };
  const worker = new Worker(
    `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(import.meta.url)}); })`,
    { eval: true, workerData: config, stdout: false, stderr: false },
  );
  const pending = new Map<number, { resolve: (r: Result) => void; reject: (err: Error) => void }>();
  let failed: Error | undefined;
  const failAll = (err: Error) => {
    failed ??= err;
    for (const p of pending.values()) p.reject(err);
    pending.clear();
  };
  worker.on("error", (err) => failAll(new Error(`API client thread failed: ${err.stack ?? err}`)));
  worker.on("exit", (code) => failAll(new Error(`API client thread exited (${code})`)));
  // ready once it has loaded this file and made its client: tsx's start-up is not the create phase's
  await new Promise<void>((resolve, reject) => {
    worker.once("message", resolve);
    worker.once("error", reject);
    worker.once("exit", (code) => reject(new Error(`API client thread exited (${code}) before it was ready`)));
  });
  worker.on("message", (m: Answer) => {
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    // the gRPC status code goes with the message, as the call's own error would carry it
    if (m.error !== undefined) p.reject(Object.assign(new Error(m.error.message), { code: m.error.code }));
    else p.resolve(m.result ?? null);
  });
  let nextId = 0;
  const ask = <R extends Result>(req: Request): Promise<R> =>
    new Promise<R>((resolve, reject) => {
      if (failed) return reject(failed);
      const id = ++nextId;
      pending.set(id, { resolve: resolve as (r: Result) => void, reject });
      worker.postMessage({ id, req });
    });

  return {
    createServices: async (specs, concurrency) => {
      const r = await ask<{ startedAt: number; endedAt: number; latenciesMs: number[] }>({ kind: "create", specs, concurrency });
      return { startedAt: localTime(r.startedAt), endedAt: localTime(r.endedAt), latenciesMs: r.latenciesMs };
    },
    created: () => Atomics.load(new Int32Array(created), 0),
    scaleCalls: {
      inspect: (service) => ask<{ service: wire.Service; inspectMs: number }>({ kind: "inspect", service }),
      update: async (service, version, spec) => {
        const r = await ask<{ sentAt: number; rpcMs: number }>({ kind: "update", service, version, spec });
        return { sentAt: localTime(r.sentAt), rpcMs: r.rpcMs };
      },
    },
    elu: (...args) => worker.performance.eventLoopUtilization(...args),
    stop: async () => {
      if (!failed) await Promise.race([ask({ kind: "stop" }).catch(() => null), sleep(5000)]);
      await worker.terminate();
    },
  };
}

async function answer(c: ClusterServiceClient, created: Int32Array, req: Request): Promise<Result> {
  switch (req.kind) {
    case "create": {
      const latenciesMs: number[] = [];
      const startedAt = processClockMs();
      await pool(req.specs.length, req.concurrency, async (i) => {
        const t0 = now();
        await call(c, "createService", { spec: req.specs[i]! });
        latenciesMs.push(now() - t0);
        Atomics.add(created, 0, 1);
      });
      return { startedAt, endedAt: processClockMs(), latenciesMs };
    }
    case "inspect": {
      const t0 = now();
      const service = (await call(c, "inspectService", { service: req.service })).service!;
      return { service, inspectMs: now() - t0 };
    }
    case "update": {
      const sentAt = processClockMs();
      const t0 = now();
      await call(c, "updateService", { service: req.service, version: req.version, spec: req.spec });
      return { sentAt, rpcMs: now() - t0 };
    }
    case "stop":
      c.close();
      return null;
  }
}

function clientThreadMain(config: ClientConfig): void {
  const port = parentPort!;
  const c = clusterClient(config.address, credentialsFromDir(config.credentialsDir), { ownConnection: config.ownConnection });
  const created = new Int32Array(config.created);
  port.on("message", ({ id, req }: Question) => {
    answer(c, created, req).then(
      (result) => {
        port.postMessage({ id, result } satisfies Answer);
        if (req.kind === "stop") port.close();
      },
      (err: unknown) => {
        const code = (err as { code?: unknown }).code;
        const error = { message: err instanceof Error ? err.message : String(err), ...(typeof code === "number" ? { code } : {}) };
        port.postMessage({ id, error } satisfies Answer);
      },
    );
  });
  port.postMessage("ready");
}

if (!isMainThread && (workerData as { role?: string } | null)?.role === WORKER_ROLE) clientThreadMain(workerData as ClientConfig);
