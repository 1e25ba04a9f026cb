// The containerd client: images (import, pull, unpack into overlayfs
// snapshots), containers, tasks and events, for one containerd namespace.
// Every multi-step write runs under a lease so containerd's GC never takes a
// half-done import or a container's fresh snapshot.

import { createHash, randomUUID } from "node:crypto";
import { constants } from "node:os";
import { type ArchiveImage, planArchive, stageArchive } from "./archive.ts";
import { ContentStore } from "./content.ts";
import { decodeEvent } from "./proto.ts";
import { type Descriptor, chainIds, formatImageRef, isIndex, normalizeImageRef, parseImageRef, resolveImage, selectManifest } from "./reference.ts";
import { pullImage } from "./registry.ts";
import { ContainerdError, Rpc, isCode } from "./rpc.ts";
import type { ImageConfig, ImageRecord, TaskInfo } from "./types.ts";

export const RUNTIME = "io.containerd.runc.v2";
export const SNAPSHOTTER = "overlayfs";
// protobufjs's built-in Any keeps its field names (type_url) whatever keepCase says
const SPEC_TYPE = "types.containerd.io/opencontainers/runtime-spec/1/Spec";
const PROCESS_TYPE = "types.containerd.io/opencontainers/runtime-spec/1/Process";
const LEASE_TTL_MS = 60 * 60 * 1000;
const CONNECT_TIMEOUT_MS = 5000;
// Unpacking a big layer takes longer than a plain call's default deadline
const APPLY_TIMEOUT_MS = 10 * 60 * 1000;
// How long deleteContainer waits for a task to exit after its SIGKILL, unless told
export const DELETE_WAIT_MS = 10_000;
const GC_SNAPSHOT_LABEL = `containerd.io/gc.ref.snapshot.${SNAPSHOTTER}`;

interface Timestamp {
  seconds: number;
  nanos: number;
}
interface ProtoImage {
  name: string;
  labels: Record<string, string>;
  target: Descriptor;
  createdAt?: Timestamp;
}
interface ProtoMount {
  type: string;
  source: string;
  target: string;
  options: string[];
}
interface ProtoProcess {
  id: string;
  pid: number;
  status: string;
  exitStatus: number;
}
interface ProtoContainer {
  id: string;
  image: string;
  labels: Record<string, string>;
  snapshotter: string;
  snapshotKey: string;
}
interface ImageConfigJson {
  config?: {
    Entrypoint?: string[] | null;
    Cmd?: string[] | null;
    Env?: string[] | null;
    WorkingDir?: string;
    User?: string;
    Labels?: Record<string, string> | null;
    StopSignal?: string;
  };
  rootfs?: { diff_ids?: string[] };
}

function iso(t: Timestamp | undefined): string {
  return new Date((t?.seconds ?? 0) * 1000 + Math.floor((t?.nanos ?? 0) / 1e6)).toISOString();
}

function sha256Text(s: string): string {
  return `sha256:${createHash("sha256").update(s).digest("hex")}`;
}

function signalNumber(signal: number | string): number {
  if (typeof signal === "number") return signal;
  if (/^\d+$/.test(signal)) return Number(signal);
  const name = signal.toUpperCase().startsWith("SIG") ? signal.toUpperCase() : `SIG${signal.toUpperCase()}`;
  const n = (constants.signals as Record<string, number>)[name];
  if (n === undefined) throw new Error(`unknown signal "${signal}"`);
  return n;
}

function imageConfigOf(json: ImageConfigJson): ImageConfig {
  const c = json.config ?? {};
  return {
    entrypoint: c.Entrypoint ?? [],
    cmd: c.Cmd ?? [],
    env: c.Env ?? [],
    workingDir: c.WorkingDir ?? "",
    user: c.User ?? "",
    labels: c.Labels ?? {},
    ...(c.StopSignal ? { stopSignal: c.StopSignal } : {}),
  };
}

const TASK_STATUSES: readonly string[] = ["created", "running", "stopped", "paused"] satisfies TaskInfo["status"][];

/** A task as containerd reports it (status "RUNNING", …; PAUSING and the like are "unknown"); exitStatus only once stopped. */
export function taskInfoOf(id: string, p: { pid: number; status: string | number; exitStatus: number }): TaskInfo {
  const status = String(p.status).toLowerCase();
  return {
    id,
    pid: p.pid,
    status: (TASK_STATUSES.includes(status) ? status : "unknown") as TaskInfo["status"],
    ...(status === "stopped" ? { exitStatus: p.exitStatus } : {}),
  };
}

/** The blobs of an image on their way into the store (from an archive or a registry). */
export type IncomingImage = Pick<ArchiveImage, "manifest" | "manifestJson" | "config" | "configJson" | "layers">;

export class Containerd {
  private readonly content: ContentStore;

  private constructor(private readonly rpc: Rpc) {
    this.content = new ContentStore(rpc);
  }

  get namespace(): string {
    return this.rpc.namespace;
  }

  get socket(): string {
    return this.rpc.socket;
  }

  /** Connects and checks that containerd answers. */
  static async connect(o: { socket: string; namespace: string; timeoutMs?: number }): Promise<Containerd> {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(o.namespace)) throw new Error(`invalid containerd namespace "${o.namespace}"`);
    const c = new Containerd(new Rpc(o.socket, o.namespace, o.timeoutMs));
    try {
      await c.rpc.unary("version", "Version", "Version", {}, { timeoutMs: CONNECT_TIMEOUT_MS });
    } catch (err) {
      c.close();
      throw new Error(`containerd is not running at ${o.socket}: ${(err as Error).message}`);
    }
    return c;
  }

  async version(): Promise<{ version: string; revision: string }> {
    const v = await this.rpc.unary<{ version: string; revision: string }>("version", "Version", "Version", {});
    return { version: v.version, revision: v.revision };
  }

  close(): void {
    this.rpc.close();
  }

  /** The namespaces of this containerd (for cleanup). */
  async namespaces(): Promise<string[]> {
    const r = await this.rpc.unary<{ namespaces: { name: string }[] }>("namespaces", "Namespaces", "List", {});
    return r.namespaces.map((n) => n.name);
  }

  /** The same containerd, another namespace. */
  async inNamespace(namespace: string): Promise<Containerd> {
    return Containerd.connect({ socket: this.socket, namespace });
  }

  // ---- leases ----

  private async withLease<T>(purpose: string, fn: (lease: string) => Promise<T>): Promise<T> {
    const id = `vipmesh-${purpose}-${randomUUID()}`;
    const expire = new Date(Date.now() + LEASE_TTL_MS).toISOString();
    await this.rpc.unary("leases", "Leases", "Create", { id, labels: { "containerd.io/gc.expire": expire } });
    let result: T;
    try {
      result = await fn(id);
    } catch (err) {
      // sync: GC drops what the failed call stored before the error reaches the caller
      await this.rpc.unary("leases", "Leases", "Delete", { id, sync: true }).catch(() => {});
      throw err;
    }
    await this.rpc.unary("leases", "Leases", "Delete", { id }).catch(() => {});
    return result;
  }

  // ---- images ----

  async importArchive(tar: NodeJS.ReadableStream): Promise<ImageRecord[]> {
    return this.withLease("import", async (lease) => {
      const entries = await stageArchive(tar, this.rpc, lease);
      const records: ImageRecord[] = [];
      for (const img of planArchive(entries)) {
        for (const l of img.layers) if (l.entry.data) await this.content.put(l.entry.data, { lease, expected: l.desc.digest });
        await this.storeImage(img, lease);
        for (const name of img.names) records.push(await this.nameImage(name, img.manifest));
      }
      return records;
    });
  }

  async pull(ref: string, onProgress?: (p: { doneBytes: number; totalBytes: number }) => void): Promise<ImageRecord> {
    const name = normalizeImageRef(ref);
    return this.withLease("pull", async (lease) => {
      const img = await pullImage(name, this.rpc, lease, onProgress);
      await this.storeImage(img, lease);
      return this.nameImage(name, img.manifest);
    });
  }

  /**
   * Stores an image whose layers are in the content store: unpacks them into
   * snapshots, then writes config and manifest with the labels that make the
   * image hold its content and snapshots against GC.
   */
  async storeImage(img: IncomingImage, lease: string): Promise<string> {
    const config = JSON.parse(img.configJson.toString("utf8")) as ImageConfigJson;
    const diffIds = config.rootfs?.diff_ids ?? [];
    if (diffIds.length !== img.layers.length) {
      throw new Error(`image config ${img.config.digest} lists ${diffIds.length} layers but the manifest has ${img.layers.length}`);
    }
    for (const [i, l] of img.layers.entries()) await this.content.label(l.desc.digest, { "containerd.io/uncompressed": diffIds[i] as string });
    const chainId = await this.unpack(
      img.layers.map((l) => l.desc),
      diffIds,
      lease,
    );
    await this.content.put(img.configJson, { lease, expected: img.config.digest, labels: chainId ? { [GC_SNAPSHOT_LABEL]: chainId } : {} });
    const refs: Record<string, string> = { "containerd.io/gc.ref.content.config": img.config.digest };
    for (const [i, l] of img.layers.entries()) refs[`containerd.io/gc.ref.content.l.${i}`] = l.desc.digest;
    await this.content.put(img.manifestJson, { lease, expected: img.manifest.digest, labels: refs });
    return chainId;
  }

  /** Applies each layer on its parent's snapshot and commits it under its chain ID; existing ones are reused. */
  private async unpack(layers: Descriptor[], diffIds: string[], lease: string): Promise<string> {
    const chain = chainIds(diffIds, sha256Text);
    let parent = "";
    for (const [i, layer] of layers.entries()) {
      const chainId = chain[i] as string;
      if (await this.snapshotExists(chainId)) {
        await this.rpc.unary("leases", "Leases", "AddResource", { id: lease, resource: { id: chainId, type: `snapshots/${SNAPSHOTTER}` } });
      } else {
        const key = `extract-${randomUUID()} ${chainId}`;
        const { mounts } = await this.rpc.unary<{ mounts: ProtoMount[] }>(
          "snapshots",
          "Snapshots",
          "Prepare",
          { snapshotter: SNAPSHOTTER, key, parent },
          { lease },
        );
        try {
          const r = await this.rpc.unary<{ applied: Descriptor }>("diff", "Diff", "Apply", { diff: layer, mounts }, { lease, timeoutMs: APPLY_TIMEOUT_MS });
          if (r.applied.digest !== diffIds[i]) {
            throw new Error(`layer ${layer.digest} unpacks to ${r.applied.digest}, but the image config says ${diffIds[i]}`);
          }
          await this.rpc.unary("snapshots", "Snapshots", "Commit", { snapshotter: SNAPSHOTTER, name: chainId, key }, { lease });
        } catch (err) {
          await this.rpc.unary("snapshots", "Snapshots", "Remove", { snapshotter: SNAPSHOTTER, key }).catch(() => {});
          if (!isCode(err, "already-exists")) throw err;
        }
      }
      parent = chainId;
    }
    return parent;
  }

  private async snapshotExists(key: string): Promise<boolean> {
    try {
      await this.rpc.unary("snapshots", "Snapshots", "Stat", { snapshotter: SNAPSHOTTER, key });
      return true;
    } catch (err) {
      if (isCode(err, "not-found")) return false;
      throw err;
    }
  }

  /** Creates or moves the image record `name` to this manifest. */
  private async nameImage(name: string, target: Descriptor): Promise<ImageRecord> {
    const image = { name, labels: {}, target: { mediaType: target.mediaType, digest: target.digest, size: target.size } };
    try {
      await this.rpc.unary("images", "Images", "Create", { image });
    } catch (err) {
      if (!isCode(err, "already-exists")) throw err;
      await this.rpc.unary("images", "Images", "Update", { image });
    }
    const record = await this.image(name);
    if (!record) throw new ContainerdError(`image ${name} vanished right after it was stored`, "not-found");
    return record;
  }

  /**
   * The image a reference names (reference.ts matchRank): its exact name, else
   * for a reference with a digest the image whose target is that digest (the
   * name without the digest first, then the same repository, then any).
   */
  async image(ref: string): Promise<ImageRecord | undefined> {
    const want = parseImageRef(ref);
    const name = formatImageRef(want);
    try {
      const { image } = await this.rpc.unary<{ image: ProtoImage }>("images", "Images", "Get", { name });
      return await this.record(image);
    } catch (err) {
      if (!isCode(err, "not-found")) throw err;
    }
    if (want.digest === undefined) return undefined;
    const { images } = await this.rpc.unary<{ images: ProtoImage[] }>("images", "Images", "List", { filters: [] });
    const found = resolveImage(
      images.map((i) => ({ ...i, digest: i.target.digest })),
      name,
    );
    return found ? this.record(found) : undefined;
  }

  /** Every image whose content is complete here (others, e.g. half-pulled by another client, are left out). */
  async images(): Promise<ImageRecord[]> {
    const { images } = await this.rpc.unary<{ images: ProtoImage[] }>("images", "Images", "List", { filters: [] });
    const out: ImageRecord[] = [];
    for (const img of images) {
      try {
        out.push(await this.record(img));
      } catch {
        // incomplete content: not an image we can run
      }
    }
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }

  private async record(img: ProtoImage): Promise<ImageRecord> {
    let manifestDesc = img.target;
    for (let depth = 0; isIndex(manifestDesc.mediaType); depth++) {
      if (depth > 4) throw new Error(`image ${img.name}: index nests too deep`);
      manifestDesc = selectManifest(await this.content.readJson(manifestDesc.digest), `image ${img.name}`);
    }
    const manifest = await this.content.readJson<{ config: Descriptor; layers: Descriptor[] }>(manifestDesc.digest);
    const config = await this.content.readJson<ImageConfigJson>(manifest.config.digest);
    const chain = chainIds(config.rootfs?.diff_ids ?? [], sha256Text);
    return {
      name: img.name,
      digest: img.target.digest,
      mediaType: img.target.mediaType,
      size: manifestDesc.size + manifest.config.size + manifest.layers.reduce((n, l) => n + Number(l.size), 0),
      config: imageConfigOf(config),
      chainId: chain[chain.length - 1] ?? "",
      createdAt: iso(img.createdAt),
    };
  }

  /** Deletes the image record and waits for containerd's GC to drop what only it held. */
  async removeImage(ref: string): Promise<void> {
    const name = normalizeImageRef(ref);
    try {
      await this.rpc.unary("images", "Images", "Delete", { name, sync: true });
    } catch (err) {
      if (isCode(err, "not-found")) throw new ContainerdError(`no such image: ${name}`, "not-found");
      throw err;
    }
  }

  // ---- containers ----

  /** A container record and its writable snapshot (key = id, parent = the image's top snapshot). */
  async createContainer(o: { id: string; image: ImageRecord; spec: object; labels: Record<string, string> }): Promise<void> {
    if (!o.image.chainId) throw new Error(`image ${o.image.name} has no layers to run`);
    await this.withLease("container", async (lease) => {
      if (await this.containerRecord(o.id)) throw new ContainerdError(`container ${o.id} already exists`, "already-exists");
      // a snapshot without a container is left over from an interrupted create
      if (await this.snapshotExists(o.id)) await this.removeSnapshot(o.id);
      await this.rpc.unary("snapshots", "Snapshots", "Prepare", { snapshotter: SNAPSHOTTER, key: o.id, parent: o.image.chainId }, { lease });
      try {
        await this.rpc.unary(
          "containers",
          "Containers",
          "Create",
          {
            container: {
              id: o.id,
              labels: o.labels,
              image: o.image.name,
              runtime: { name: RUNTIME },
              spec: { type_url: SPEC_TYPE, value: Buffer.from(JSON.stringify(o.spec)) },
              snapshotter: SNAPSHOTTER,
              snapshotKey: o.id,
            },
          },
          { lease },
        );
      } catch (err) {
        await this.removeSnapshot(o.id).catch(() => {});
        throw err;
      }
    });
  }

  private async containerRecord(id: string): Promise<ProtoContainer | undefined> {
    try {
      return (await this.rpc.unary<{ container: ProtoContainer }>("containers", "Containers", "Get", { id })).container;
    } catch (err) {
      if (isCode(err, "not-found")) return undefined;
      throw err;
    }
  }

  async containers(labelFilter: Record<string, string> = {}): Promise<{ id: string; image: string; labels: Record<string, string> }[]> {
    const { containers } = await this.rpc.unary<{ containers: ProtoContainer[] }>("containers", "Containers", "List", { filters: [] });
    return containers
      .filter((c) => Object.entries(labelFilter).every(([k, v]) => c.labels[k] === v))
      .map((c) => ({ id: c.id, image: c.image, labels: c.labels }))
      .sort((a, b) => a.id.localeCompare(b.id));
  }

  /**
   * Its task (killed if needed), the container record and its snapshot;
   * idempotent. A task that has not exited `waitMs` after its SIGKILL is left
   * as it is, with a "timeout" error: the caller tries again later.
   */
  async deleteContainer(id: string, o: { waitMs?: number } = {}): Promise<void> {
    const task = await this.task(id);
    if (task) {
      if (task.status !== "stopped") {
        const waitMs = o.waitMs ?? DELETE_WAIT_MS;
        const giveUp = new AbortController();
        const exited = this.wait(id, { signal: giveUp.signal }).then(
          () => true,
          () => true,
        );
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<false>((resolve) => {
          timer = setTimeout(() => resolve(false), waitMs);
        });
        try {
          await this.kill(id, "SIGKILL", { all: true }).catch((err) => {
            if (!isCode(err, "not-found")) throw err;
          });
          if (!(await Promise.race([exited, late]))) {
            throw new ContainerdError(`container ${id} did not exit within ${waitMs} ms of its SIGKILL: left for a later try`, "timeout");
          }
        } finally {
          clearTimeout(timer);
          giveUp.abort();
        }
      }
      await this.deleteTask(id);
    }
    const record = await this.containerRecord(id);
    if (record) {
      await this.rpc.unary("containers", "Containers", "Delete", { id }).catch((err) => {
        if (!isCode(err, "not-found")) throw err;
      });
    }
    await this.removeSnapshot(record?.snapshotKey || id);
  }

  private async removeSnapshot(key: string): Promise<void> {
    try {
      await this.rpc.unary("snapshots", "Snapshots", "Remove", { snapshotter: SNAPSHOTTER, key });
    } catch (err) {
      if (!isCode(err, "not-found")) throw err;
    }
  }

  /** The mounts of an active snapshot (a container's: key = its id), to read its image's files before it runs (the agent: a USER name's /etc/passwd). */
  async mounts(key: string): Promise<{ type: string; source: string; options: string[] }[]> {
    const { mounts } = await this.rpc.unary<{ mounts: ProtoMount[] }>("snapshots", "Snapshots", "Mounts", { snapshotter: SNAPSHOTTER, key });
    return mounts.map((m) => ({ type: m.type, source: m.source, options: m.options ?? [] }));
  }

  async snapshots(): Promise<string[]> {
    const parts = await this.rpc.collect<{ info: { name: string }[] }>("snapshots", "Snapshots", "List", { snapshotter: SNAPSHOTTER });
    return parts.flatMap((p) => p.info.map((i) => i.name)).sort();
  }

  // ---- tasks ----

  /** Creates and starts the container's task; its stdout and stderr go to `stdioUri` (file://, binary://). */
  async startTask(id: string, o: { stdioUri: string }): Promise<{ pid: number }> {
    const record = await this.containerRecord(id);
    if (!record) throw new ContainerdError(`no such container: ${id}`, "not-found");
    const { mounts } = await this.rpc.unary<{ mounts: ProtoMount[] }>("snapshots", "Snapshots", "Mounts", {
      snapshotter: record.snapshotter || SNAPSHOTTER,
      key: record.snapshotKey || id,
    });
    await this.rpc.unary("tasks", "Tasks", "Create", {
      containerId: id,
      rootfs: mounts,
      stdin: "",
      stdout: o.stdioUri,
      stderr: o.stdioUri,
      terminal: false,
    });
    try {
      const { pid } = await this.rpc.unary<{ pid: number }>("tasks", "Tasks", "Start", { containerId: id });
      return { pid };
    } catch (err) {
      await this.rpc.unary("tasks", "Tasks", "Delete", { containerId: id }).catch(() => {});
      throw err;
    }
  }

  async task(id: string, o: { execId?: string } = {}): Promise<TaskInfo | undefined> {
    try {
      const { process } = await this.rpc.unary<{ process: ProtoProcess }>("tasks", "Tasks", "Get", { containerId: id, execId: o.execId ?? "" });
      return taskInfoOf(id, process);
    } catch (err) {
      if (isCode(err, "not-found")) return undefined;
      throw err;
    }
  }

  /** Ids of the containers that have a task, with its status. */
  async tasks(): Promise<TaskInfo[]> {
    const { tasks } = await this.rpc.unary<{ tasks: ProtoProcess[] }>("tasks", "Tasks", "List", { filter: "" });
    return tasks.map((t) => taskInfoOf(t.id, t));
  }

  async kill(id: string, signal: number | string, o: { all?: boolean; execId?: string } = {}): Promise<void> {
    await this.rpc.unary("tasks", "Tasks", "Kill", { containerId: id, execId: o.execId ?? "", signal: signalNumber(signal), all: o.all ?? false });
  }

  /** Resolves when the task (or its exec process) exits: no deadline; `signal` gives up. */
  async wait(id: string, o: { execId?: string; signal?: AbortSignal } = {}): Promise<{ exitStatus: number; exitedAt: string }> {
    const r = await this.rpc.unary<{ exitStatus: number; exitedAt: Timestamp }>(
      "tasks",
      "Tasks",
      "Wait",
      { containerId: id, execId: o.execId ?? "" },
      { timeoutMs: Number.POSITIVE_INFINITY, ...(o.signal ? { signal: o.signal } : {}) },
    );
    return { exitStatus: r.exitStatus, exitedAt: iso(r.exitedAt) };
  }

  /** Deletes a stopped task; undefined when there was none. */
  async deleteTask(id: string): Promise<{ exitStatus: number } | undefined> {
    try {
      const r = await this.rpc.unary<{ exitStatus: number }>("tasks", "Tasks", "Delete", { containerId: id });
      return { exitStatus: r.exitStatus };
    } catch (err) {
      if (isCode(err, "not-found")) return undefined;
      throw err;
    }
  }

  /** Starts another process in the task's container (OCI Process JSON). */
  async exec(id: string, o: { execId: string; process: object; stdioUri?: string }): Promise<{ pid: number }> {
    await this.rpc.unary("tasks", "Tasks", "Exec", {
      containerId: id,
      execId: o.execId,
      stdin: "",
      stdout: o.stdioUri ?? "",
      stderr: o.stdioUri ?? "",
      terminal: false,
      spec: { type_url: PROCESS_TYPE, value: Buffer.from(JSON.stringify(o.process)) },
    });
    try {
      const { pid } = await this.rpc.unary<{ pid: number }>("tasks", "Tasks", "Start", { containerId: id, execId: o.execId });
      return { pid };
    } catch (err) {
      await this.deleteProcess(id, o.execId).catch(() => {});
      throw err;
    }
  }

  async deleteProcess(id: string, execId: string): Promise<{ exitStatus: number } | undefined> {
    try {
      const r = await this.rpc.unary<{ exitStatus: number }>("tasks", "Tasks", "DeleteProcess", { containerId: id, execId });
      return { exitStatus: r.exitStatus };
    } catch (err) {
      if (isCode(err, "not-found")) return undefined;
      throw err;
    }
  }

  // ---- events ----

  /** This namespace's events (/tasks/exit, /tasks/oom, …) until the returned function is called. */
  events(onEvent: (e: { topic: string; event: object }) => void, onError?: (err: Error) => void): () => void {
    const call = this.rpc.stream<{ topic: string; namespace: string; event?: { type_url: string; value: Buffer } }>("events", "Events", "Subscribe", {
      filters: [`namespace==${this.namespace}`],
    });
    let cancelled = false;
    call.on("data", (env) => {
      let event: object = {};
      try {
        if (env.event) event = decodeEvent(env.event.type_url, env.event.value);
      } catch {
        // an event type this client does not know: still report its topic
      }
      onEvent({ topic: env.topic, event });
    });
    call.on("error", (err) => {
      if (!cancelled) onError?.(err);
    });
    return () => {
      cancelled = true;
      call.cancel();
    };
  }
}
