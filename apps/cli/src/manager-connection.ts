// One client connection to a manager per command, with a deadline on every
// unary call and gRPC failures turned into messages that name the manager.
// Given several managers, a call that cannot reach one goes to the next (a
// read also when its connection dropped); the one that answered serves the
// rest of the command. A manager's own refusal, UNAVAILABLE included (a
// store without quorum), is the answer: no other manager could do better.

import { randomUUID } from "node:crypto";
import { connectivityState, type Interceptor, type ServiceError, status } from "@grpc/grpc-js";
import { type ClusterServiceClient, call, clusterClient, isServiceError, isUnreachable, staleReads, statusName } from "@vipmesh/api";
import { formatDuration } from "./duration.ts";
import { CommandFailed, OutcomeUnknown } from "./errors.ts";
import type { ManagerTarget } from "./host.ts";

/** A read can be asked again at no cost; a change may queue behind many others at the manager. */
export const DEFAULT_DEADLINES_MS = { read: 5000, write: 30_000 };

type Method = keyof ClusterServiceClient;

/** The calls that change the cluster, each with what a caller left without an answer should check. */
const WRITES: Partial<Record<Method, string>> = {
  createNetwork: "the network may or may not have been created; check with `vipmesh network ls`",
  removeNetwork: "the network may or may not have been removed; check with `vipmesh network ls`",
  createService: "the service may or may not have been created; check with `vipmesh service ls`",
  updateService: "the service may or may not have been updated; check with `vipmesh service inspect`",
  rollbackService: "the service may or may not have been rolled back; check with `vipmesh service inspect`",
  removeService: "the service may or may not have been removed; check with `vipmesh service ls`",
  updateNode: "the node may or may not have been updated; check with `vipmesh node inspect`",
  removeNode: "the node may or may not have been removed; check with `vipmesh node ls`",
  removeImage: "the image may or may not have been removed; check with `vipmesh image ls`",
};

/** Creates carry a request ID, one per invocation: the manager answers a repeat of it with the first result. */
const IDEMPOTENT: ReadonlySet<Method> = new Set(["createNetwork", "createService"]);

type UnaryCall<K extends Method> = typeof call<ClusterServiceClient, K>;

export interface ConnectionOptions {
  /** Every call's deadline; by default DEFAULT_DEADLINES_MS's for its kind. */
  timeoutMs?: number | undefined;
  /** Told, once per reason, when a manager answered a read from its cache while it could not reach the store's quorum. */
  warn?: ((line: string) => void) | undefined;
}

export class ManagerConnection {
  private readonly clients: (ClusterServiceClient | undefined)[];
  /** Index of the manager calls go to: the one that answered last. */
  private current = 0;
  private readonly timeoutMs: number | undefined;
  private readonly interceptors: Interceptor[];

  constructor(
    private readonly target: ManagerTarget,
    options: ConnectionOptions = {},
  ) {
    this.timeoutMs = options.timeoutMs;
    this.clients = target.addresses.map(() => undefined);
    const { warn } = options;
    const told = new Set<string>();
    this.interceptors = warn
      ? [staleReads((reason) => told.has(reason) || (told.add(reason), warn(`warning: ${reason}; this may be out of date\n`)))]
      : [];
  }

  /** The manager calls go to now. */
  get address(): string {
    return this.target.addresses[this.current]!;
  }

  /** The client of the manager calls go to now (streams use it: they do not move to another manager; see reachable). */
  get client(): ClusterServiceClient {
    return this.clientOf(this.current);
  }

  /**
   * The client of the first manager, from the current one, that takes a
   * connection: for a stream that is the command's first call. None does: the
   * current one's, whose call then fails saying why.
   */
  async reachable(): Promise<ClusterServiceClient> {
    const { addresses } = this.target;
    for (let tries = 0; tries < addresses.length; tries++) {
      const at = this.current;
      if (addresses.length === 1 || (await connects(this.clientOf(at), this.timeoutMs ?? DEFAULT_DEADLINES_MS.read))) break;
      if (this.current === at) this.current = (at + 1) % addresses.length;
    }
    return this.client;
  }

  private clientOf(i: number): ClusterServiceClient {
    this.clients[i] ??= clusterClient(this.target.addresses[i]!, this.target.credentials, { interceptors: this.interceptors });
    return this.clients[i];
  }

  /**
   * A unary call, to the next manager when one cannot be reached; failures
   * come back as CommandFailed with a message for people, or OutcomeUnknown
   * when a change went unanswered.
   */
  async call<K extends Method>(method: K, req: Parameters<UnaryCall<K>>[2]): Promise<Awaited<ReturnType<UnaryCall<K>>>> {
    const unknown = WRITES[method];
    const timeoutMs = this.timeoutMs ?? (unknown ? DEFAULT_DEADLINES_MS.write : DEFAULT_DEADLINES_MS.read);
    const request = IDEMPOTENT.has(method) ? ({ ...(req as object), requestId: randomUUID() } as typeof req) : req;
    const { addresses } = this.target;
    const unreached: string[] = [];
    for (let tries = 0; ; tries++) {
      const at = this.current;
      try {
        // waitForReady is off by default in grpc-js: an unreachable manager fails fast.
        return await call(this.clientOf(at), method, request, { deadline: Date.now() + timeoutMs });
      } catch (err) {
        if (!isServiceError(err)) throw err;
        // a change may have been made when the connection dropped: only a read is asked again
        const another = isUnreachable(err) || (!unknown && isDropped(err));
        if (another) unreached.push(`${addresses[at]}: ${connectionFailure(err)}`);
        if (another && tries + 1 < addresses.length) {
          // calls made side by side move on once for the same manager
          if (this.current === at) this.current = (at + 1) % addresses.length;
          continue;
        }
        const silence = unknown && unanswered(err, timeoutMs);
        if (silence) throw new OutcomeUnknown(`the vipmesh manager at ${addresses[at]} ${silence}: ${unknown}`);
        if (unreached.length > 1) {
          throw new CommandFailed(`cannot reach any vipmesh manager (${unreached.join("; ")}); are they running? Pass --host or set VIPMESH_HOST`);
        }
        throw new CommandFailed(describeManagerError(err, addresses[at]!, timeoutMs));
      }
    }
  }

  /** gRPC errors become CommandFailed; anything else is passed through unchanged. */
  failure(err: unknown): unknown {
    return isServiceError(err) ? new CommandFailed(describeManagerError(err, this.address, this.timeoutMs ?? DEFAULT_DEADLINES_MS.read)) : err;
  }

  close(): void {
    for (const client of this.clients) client?.close();
  }
}

/** Whether the client's channel connects within `timeoutMs`: false as soon as an attempt failed. */
function connects(client: ClusterServiceClient, timeoutMs: number): Promise<boolean> {
  const channel = client.getChannel();
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve) => {
    const check = () => {
      const state = channel.getConnectivityState(true);
      if (state === connectivityState.READY) resolve(true);
      else if (state === connectivityState.TRANSIENT_FAILURE || state === connectivityState.SHUTDOWN) resolve(false);
      else channel.watchConnectivityState(state, deadline, (err) => (err ? resolve(false) : check()));
    };
    check();
  });
}

const isDropped = (err: ServiceError) => err.code === status.UNAVAILABLE && CONNECTION_FAILURE.test(err.details);

// grpc-js's own words for a connection that could not be made or was lost.
const CONNECTION_FAILURE =
  /^(No connection established|Connection dropped|Failed to connect)|ECONNREFUSED|ENOENT|ECONNRESET|EHOSTUNREACH|ENETUNREACH/;

/** How the manager left a call unanswered, when it may have received and carried it out; else undefined. */
function unanswered(err: Pick<ServiceError, "code" | "details">, timeoutMs: number): string | undefined {
  if (err.code === status.DEADLINE_EXCEEDED) return `did not answer within ${formatDuration(timeoutMs)}`;
  if (err.code === status.UNAVAILABLE && err.details.startsWith("Connection dropped")) return "dropped the connection before it answered";
  return undefined;
}

/** grpc-js's words for a failed or lost connection, without its boilerplate. */
const connectionFailure = (err: Pick<ServiceError, "details">): string =>
  err.details
    .replace(/^No connection established\. Last error: (Error: )?/, "")
    .replace(/\.? Resolution note:.*$/, "")
    .replace(/\s*\(\d{4}-\d\d-\d\dT[^)]*\)$/, "");

/** `timeoutMs`: the deadline the call had. */
export function describeManagerError(err: Pick<ServiceError, "code" | "details">, address: string, timeoutMs: number): string {
  if (err.code === status.DEADLINE_EXCEEDED) return `the vipmesh manager at ${address} ${unanswered(err, timeoutMs)}`;
  if (err.code === status.UNAVAILABLE && CONNECTION_FAILURE.test(err.details)) {
    return `cannot reach the vipmesh manager at ${address} (${connectionFailure(err)}); is it running? Pass --host or set VIPMESH_HOST`;
  }
  return err.details || statusName(err.code);
}

/** Runs `fn` with a connection to the managers, closing it afterwards so the process can exit. */
export async function withConnection<T>(target: ManagerTarget, fn: (conn: ManagerConnection) => Promise<T>, options: ConnectionOptions = {}): Promise<T> {
  const conn = new ManagerConnection(target, options);
  try {
    return await fn(conn);
  } finally {
    conn.close();
  }
}
