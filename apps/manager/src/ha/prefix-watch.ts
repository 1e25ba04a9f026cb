// The keys under one etcd prefix, kept current in memory: a snapshot, then
// the watch from the revision after it (etcd3 resumes a broken watch from
// where it was); a watch etcd cancels (compaction) is replaced by a new
// snapshot and watch.

import type { Etcd3, IKeyValue } from "@vipmesh/etcd";

type Watcher = Awaited<ReturnType<ReturnType<Etcd3["watch"]>["create"]>>;

export interface Entry {
  value: string;
  /** The lease the key lives on ("0": none). */
  lease: string;
}

const RELOAD_RETRY_MS = 500;

export class PrefixWatch {
  /** By key, less the prefix. */
  readonly entries = new Map<string, Entry>();
  private watcher: Watcher | undefined;
  private retry: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly client: Etcd3,
    private readonly prefix: string,
    /** After the snapshot was (re)loaded and after each change. */
    private readonly onChange: () => void,
  ) {}

  /** Loads the snapshot and starts watching; rejects if etcd cannot be read now. */
  async start(): Promise<void> {
    const res = await this.client.getAll().prefix(this.prefix).exec();
    this.entries.clear();
    for (const kv of res.kvs) this.entries.set(this.name(kv), entryOf(kv));
    const watcher = await this.client.watch().prefix(this.prefix).startRevision(String(Number(res.header.revision) + 1)).create();
    if (this.stopped) return void (await watcher.cancel());
    this.watcher = watcher;
    watcher.on("put", (kv) => {
      this.entries.set(this.name(kv), entryOf(kv));
      this.onChange();
    });
    watcher.on("delete", (kv) => {
      this.entries.delete(this.name(kv));
      this.onChange();
    });
    watcher.on("error", () => this.reload());
    this.onChange();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retry);
    void this.watcher?.cancel().catch(() => {});
  }

  private reload(): void {
    if (this.stopped) return;
    void this.watcher?.cancel().catch(() => {});
    this.start().catch(() => {
      if (!this.stopped) this.retry = setTimeout(() => this.reload(), RELOAD_RETRY_MS);
    });
  }

  private name(kv: IKeyValue): string {
    return kv.key.toString().slice(this.prefix.length);
  }
}

const entryOf = (kv: IKeyValue): Entry => ({ value: kv.value.toString(), lease: String(kv.lease) });
