// gRPC plumbing for containerd: one channel to the socket, the namespace (and
// lease) headers on every call, promise-returning calls, and errors that say
// which call failed and why.

import * as grpc from "@grpc/grpc-js";
import { once } from "node:events";
import { serviceClient } from "./proto.ts";

export type ErrorCode = "not-found" | "already-exists" | "failed-precondition" | "unavailable" | "invalid-argument" | "timeout" | "other";

/** A failed containerd call; `code` lets callers treat "not found" / "already exists" as outcomes. */
export class ContainerdError extends Error {
  constructor(
    message: string,
    readonly code: ErrorCode,
  ) {
    super(message);
    this.name = "ContainerdError";
  }
}

const CODES: Partial<Record<number, ErrorCode>> = {
  [grpc.status.NOT_FOUND]: "not-found",
  [grpc.status.ALREADY_EXISTS]: "already-exists",
  [grpc.status.FAILED_PRECONDITION]: "failed-precondition",
  [grpc.status.UNAVAILABLE]: "unavailable",
  [grpc.status.INVALID_ARGUMENT]: "invalid-argument",
  [grpc.status.DEADLINE_EXCEEDED]: "timeout",
};

export function toContainerdError(what: string, err: unknown): ContainerdError {
  if (err instanceof ContainerdError) return err;
  const e = err as grpc.ServiceError;
  const code = typeof e?.code === "number" ? (CODES[e.code] ?? "other") : "other";
  const detail = typeof e?.details === "string" && e.details ? e.details : String(e?.message ?? err);
  return new ContainerdError(`containerd ${what}: ${detail}`, code);
}

export function isCode(err: unknown, code: ErrorCode): boolean {
  return err instanceof ContainerdError && err.code === code;
}

// A unary call with no deadline of its own gets this one: a hung containerd must not hang its caller.
export const DEFAULT_TIMEOUT_MS = 30_000;

// Big enough for an image's content reads and snapshot listings; containerd sends at most 16 MiB.
const MAX_MESSAGE = 16 << 20;

type Method = (req: unknown, meta: grpc.Metadata, opts: grpc.CallOptions, cb?: (err: grpc.ServiceError | null, res: unknown) => void) => unknown;

/** The channel and the services' clients, sharing one connection. */
export class Rpc {
  private readonly clients = new Map<string, grpc.Client>();
  private readonly channelOverride: grpc.Channel;

  constructor(
    readonly socket: string,
    readonly namespace: string,
    private readonly defaultTimeoutMs = DEFAULT_TIMEOUT_MS,
  ) {
    this.channelOverride = new grpc.Channel(`unix://${socket}`, grpc.credentials.createInsecure(), {
      "grpc.max_receive_message_length": MAX_MESSAGE,
      "grpc.max_send_message_length": MAX_MESSAGE,
    });
  }

  client(pkg: string, service: string): grpc.Client {
    const key = `${pkg}.${service}`;
    let c = this.clients.get(key);
    if (!c) {
      const Ctor = serviceClient(pkg, service);
      c = new Ctor(`unix://${this.socket}`, grpc.credentials.createInsecure(), { channelOverride: this.channelOverride });
      this.clients.set(key, c);
    }
    return c;
  }

  metadata(o: { lease?: string; namespace?: string } = {}): grpc.Metadata {
    const m = new grpc.Metadata();
    m.set("containerd-namespace", o.namespace ?? this.namespace);
    if (o.lease) m.set("containerd-lease", o.lease);
    return m;
  }

  method(pkg: string, service: string, name: string): Method {
    const c = this.client(pkg, service) as unknown as Record<string, Method>;
    const m = c[name];
    if (!m) throw new Error(`containerd ${pkg}.${service} has no method ${name}`);
    return m.bind(c);
  }

  /**
   * A unary call; rejects with a ContainerdError naming the call. It has a
   * deadline (timeoutMs, else the default; Infinity for none: Tasks.Wait), and
   * `signal` cancels it.
   */
  unary<T>(
    pkg: string,
    service: string,
    name: string,
    req: object,
    o: { lease?: string; namespace?: string; timeoutMs?: number; waitForReady?: boolean; signal?: AbortSignal } = {},
  ): Promise<T> {
    const m = this.method(pkg, service, name);
    const opts: grpc.CallOptions = {};
    const timeoutMs = o.timeoutMs ?? this.defaultTimeoutMs;
    if (Number.isFinite(timeoutMs)) opts.deadline = Date.now() + timeoutMs;
    if (o.waitForReady) (opts as Record<string, unknown>).waitForReady = true;
    const what = `${service}.${name}`;
    return new Promise<T>((resolve, reject) => {
      if (o.signal?.aborted) return reject(new ContainerdError(`containerd ${what}: cancelled`, "other"));
      const call = m(req, this.metadata(o), opts, (err, res) => {
        o.signal?.removeEventListener("abort", cancel);
        if (err?.code === grpc.status.DEADLINE_EXCEEDED) return reject(new ContainerdError(`containerd ${what}: no answer within ${timeoutMs} ms`, "timeout"));
        if (err) return reject(toContainerdError(what, err));
        return resolve(res as T);
      }) as grpc.ClientUnaryCall;
      const cancel = () => call.cancel();
      o.signal?.addEventListener("abort", cancel, { once: true });
    });
  }

  /** A server-streaming call, collected. */
  async collect<T>(pkg: string, service: string, name: string, req: object, o: { namespace?: string } = {}): Promise<T[]> {
    const call = this.method(pkg, service, name)(req, this.metadata(o), {}) as grpc.ClientReadableStream<T>;
    const out: T[] = [];
    try {
      for await (const msg of call) out.push(msg as T);
    } catch (err) {
      throw toContainerdError(`${service}.${name}`, err);
    }
    return out;
  }

  /** A server stream, for events. */
  stream<T>(pkg: string, service: string, name: string, req: object): grpc.ClientReadableStream<T> {
    return this.method(pkg, service, name)(req, this.metadata(), {}) as grpc.ClientReadableStream<T>;
  }

  /** A bidirectional stream (content writes). */
  duplex<Req, Res>(pkg: string, service: string, name: string, o: { lease?: string } = {}): grpc.ClientDuplexStream<Req, Res> {
    const c = this.client(pkg, service) as unknown as Record<string, (meta: grpc.Metadata) => grpc.ClientDuplexStream<Req, Res>>;
    const m = c[name];
    if (!m) throw new Error(`containerd ${pkg}.${service} has no method ${name}`);
    return m.call(c, this.metadata(o));
  }

  close(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
    this.channelOverride.close();
  }
}

/** Writes to a duplex stream, waiting while it is full. */
export async function writeMessage<Req>(call: grpc.ClientDuplexStream<Req, unknown>, msg: Req): Promise<void> {
  if (!call.write(msg)) await once(call, "drain");
}
