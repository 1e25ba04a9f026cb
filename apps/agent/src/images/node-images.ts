// The node's images, as the manager's image calls see them (load, ls, rm),
// and their garbage collection: an image no task of the node used for
// `gcAfterMs` (loaded counts as used; last uses kept in the state dir) is
// removed. An image a task of the node uses is never removed by the GC, and by
// `rm` only when forced (its name goes; the task's container keeps its snapshot).

import type { ImageRecord } from "@vipmesh/containerd";
import { formatImageRef, notFound, parseImageRef, precondition, refersTo, VipmeshError } from "@vipmesh/core";
import type { Readable } from "node:stream";
import { ImageLastUse } from "./last-use.ts";

/** Docker's default: an unused image goes after a day. */
export const DEFAULT_IMAGE_GC_AFTER_MS = 24 * 3600_000;

/** What this needs of containerd (the Containerd client; a fake in unit tests). */
export interface ImageStore {
  importArchive(tar: Readable): Promise<ImageRecord[]>;
  images(): Promise<ImageRecord[]>;
  removeImage(ref: string): Promise<void>;
}

/** A task of the node and the image reference its spec gives. */
export interface ImageUser {
  task: string;
  image: string;
}

/** An image of the node, as ImageReply carries it. */
export interface NodeImageInfo {
  name: string;
  digest: string;
  size: number;
  createdAt: string;
  tasks: string[];
  mediaType: string;
  os: string;
  architecture: string;
  lastUsed: string;
}

export interface NodeImagesOptions {
  store: ImageStore;
  stateDir: string;
  /** Unused this long, an image is removed; default DEFAULT_IMAGE_GC_AFTER_MS. */
  gcAfterMs?: number;
  /** The node's tasks that use (or may yet use) an image; undefined until the agent knows them (its first full assignment). */
  users: () => ImageUser[] | undefined;
  log: (line: string) => void;
  now?: () => number;
}

/** A reference's name without its digest ("web:1@sha256:…" → "docker.io/library/web:1"). */
function nameOf(ref: string): string {
  return formatImageRef({ ...parseImageRef(ref), digest: undefined });
}

export class NodeImages {
  private readonly lastUse: ImageLastUse;
  private readonly gcAfterMs: number;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | undefined;
  private collecting: Promise<string[]> | undefined;

  constructor(private readonly o: NodeImagesOptions) {
    this.lastUse = new ImageLastUse(o.stateDir);
    this.gcAfterMs = o.gcAfterMs ?? DEFAULT_IMAGE_GC_AFTER_MS;
    this.now = o.now ?? Date.now;
  }

  /** Collects now and then: a few times per period, at most every 10 minutes. */
  start(): void {
    const every = Math.min(10 * 60_000, Math.max(100, this.gcAfterMs / 4));
    this.timer = setInterval(() => void this.collect().catch((err: unknown) => this.o.log(`image GC failed: ${(err as Error).message}`)), every);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Imports a tarball (docker-archive or OCI layout); resolves with the names loaded. */
  async load(tar: Readable): Promise<string[]> {
    const records = await this.o.store.importArchive(tar);
    const names = records.map((r) => r.name);
    this.lastUse.touch(names, this.now());
    return names;
  }

  /** The node's images, each with the tasks that use it; those in use count as used now. */
  async list(): Promise<NodeImageInfo[]> {
    const images = await this.o.store.images();
    const users = this.usersOf(images);
    return images
      .map((r) => {
        const tasks = users.get(r.name) ?? [];
        const last = this.lastUse.get(r.name);
        return {
          name: r.name,
          digest: r.digest,
          size: r.size,
          createdAt: r.createdAt,
          tasks,
          mediaType: r.mediaType,
          // the one platform @vipmesh/containerd imports and pulls
          os: "linux",
          architecture: "amd64",
          lastUsed: last === undefined ? "" : new Date(last).toISOString(),
        };
      })
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  /**
   * Removes the image `ref` names: NOT_FOUND when the node has none,
   * FAILED_PRECONDITION naming the tasks that use it unless `force`. With
   * `check`, only says whether it could. Resolves with the names removed.
   */
  async remove(ref: string, o: { force?: boolean; check?: boolean } = {}): Promise<string[]> {
    parseImageRef(ref); // an invalid reference: its error, before anything else
    if (!this.o.users()) throw new VipmeshError("unavailable", "this node's agent does not know its tasks yet (it waits for the manager's first assignment): try again shortly");
    const images = await this.o.store.images();
    const matching = images.filter((r) => refersTo(r, ref));
    if (matching.length === 0) throw notFound(`No such image: ${ref}`);
    const users = this.usersOf(images);
    const tasks = matching.flatMap((r) => users.get(r.name) ?? []);
    if (tasks.length > 0 && !o.force) {
      throw precondition(`image ${ref} is in use by task${tasks.length > 1 ? "s" : ""} ${[...new Set(tasks)].sort().join(", ")} (--force removes its name anyway; running tasks keep what they run)`);
    }
    if (o.check) return [];
    for (const r of matching) await this.o.store.removeImage(r.name);
    this.lastUse.keepOnly(new Set(images.filter((r) => !matching.includes(r)).map((r) => r.name)));
    return matching.map((r) => r.name);
  }

  /** One GC pass (never two at once): removes images unused for the period; resolves with their names. */
  collect(): Promise<string[]> {
    this.collecting ??= this.collectOnce().finally(() => (this.collecting = undefined));
    return this.collecting;
  }

  private async collectOnce(): Promise<string[]> {
    if (!this.o.users()) return []; // which images tasks use is not known yet: nothing can be called unused
    const images = await this.o.store.images();
    const now = this.now();
    const users = this.usersOf(images);
    this.lastUse.keepOnly(new Set(images.map((r) => r.name)));
    // in use: used now; never seen (pulled for a task, or before the record existed): counts from now
    this.lastUse.touch(images.filter((r) => users.has(r.name) || this.lastUse.get(r.name) === undefined).map((r) => r.name), now);
    const removed: string[] = [];
    for (const r of images) {
      if (users.has(r.name) || now - (this.lastUse.get(r.name) ?? now) < this.gcAfterMs) continue;
      try {
        await this.o.store.removeImage(r.name);
        removed.push(r.name);
        this.o.log(`image GC: removed ${r.name} (${r.digest}), unused for ${Math.round((now - (this.lastUse.get(r.name) ?? now)) / 1000)} s`);
      } catch (err) {
        this.o.log(`image GC: cannot remove ${r.name}: ${(err as Error).message}`);
      }
    }
    this.lastUse.keepOnly(new Set(images.map((r) => r.name).filter((n) => !removed.includes(n))));
    return removed;
  }

  /** Image name → names of the node's tasks that use it. */
  private usersOf(images: readonly ImageRecord[]): Map<string, string[]> {
    const users = new Map<string, string[]>();
    for (const u of this.o.users() ?? []) {
      let name: string;
      try {
        name = nameOf(u.image);
      } catch {
        continue; // a reference no image can have
      }
      // the image it names, and (kept from the GC) the one its name without the digest names
      for (const r of images) if (refersTo(r, u.image) || r.name === name) users.set(r.name, [...(users.get(r.name) ?? []), u.task]);
    }
    return users;
  }
}
