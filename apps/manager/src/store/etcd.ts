// The etcd backend: the cluster in etcd under one prefix, shared by any
// number of managers.
//
//   <prefix>version           {"version":N,"commit":ID} (ID: random, each value unique); {"version":N,"pending":K,"commit":ID}
//                             while a split commit rolls forward, {"version":N} once it has
//   <prefix>o/<kind>/<id>     an object's JSON
//   <prefix>s/<name>          a setting sealed with the store key (secret-box.ts)
//   <prefix>j/<N>/<ID>/<i>    part i of split commit N (ID: its commit's): a JSON array of writes (settings sealed)
//   <prefix>ha/…              the HA keys (leader, managers, node liveness): not the store's
//
// A commit is one etcd transaction guarded by the version value this
// manager last saw. One that outgrows etcd's limits (128 operations, 1.5 MiB
// per request) is split: its writes go to journal parts first, one small
// transaction then sets the version with `pending` (the commit point), and
// the parts are applied and removed after it by the writer or, if it died,
// by the next manager to load or commit.

import { randomBytes } from "node:crypto";
import type { ObjectKind } from "@vipmesh/core";
import { connectEtcd, type Etcd3, type EtcdClientTls, type ICompare, type IKeyValue, type IRequestOp, type IWatchResponse } from "@vipmesh/etcd";
import { type ForeignCommit, KINDS, type PersistedState, StaleWrite, type StoreBackend, StoreUnavailable, type Write } from "./backend.ts";
import { open, seal } from "./secret-box.ts";

const DEFAULT_PREFIX = "/vipmesh/";

/** Per request, with margins under etcd's defaults (--max-txn-ops 128, --max-request-bytes 1.5 MiB). */
const MAX_OPS = 120;
const MAX_BYTES = 1024 * 1024;
/** What one operation costs a request beside its key and value (protobuf framing), counted generously. */
const OP_OVERHEAD = 64;
const COMMIT_TIMEOUT_MS = 3_000;
const LOAD_TIMEOUT_MS = 10_000;
const LOAD_PAGE = 1_000;
const PROBE_INTERVAL_MS = 500;
const PROBE_TIMEOUT_MS = 1_000;
const PAD = 16;
/** Room kept in a request for the version key's put. */
const VERSION_BYTES = 1024;

export interface EtcdBackendOptions {
  endpoints: readonly string[];
  tls: EtcdClientTls | undefined;
  /** The store key (32 bytes, readStoreKey) every manager of the cluster shares. */
  storeKey: Buffer;
  /** Default /vipmesh/; tests give each their own. */
  prefix?: string;
  /** Tests only: a split commit stops at its commit point, rolled forward by none, as if its manager died there. */
  stopAfterCommitPoint?: boolean;
}

/** One commit of this manager's on its way. */
interface Attempt {
  /** Given up (the probe found etcd unwritable): it stops where it is, and the watch tells what became of it. */
  cancelled: boolean;
  /** Its ID (the version value's "commit", its journal parts' directory). */
  id: string;
  /** The version value it writes. */
  raw: string | undefined;
  /** The watch saw it committed. */
  seen: boolean;
}

/** The version key's value: what commits compare against. */
interface VersionState {
  version: number;
  /** Parts of a split commit not rolled forward yet. */
  pending?: number;
  /** The commit's ID, unique to it: its journal parts are under it. */
  commit?: string;
  /** The stored bytes; undefined while the key does not exist (an empty store). */
  raw: Buffer | undefined;
}

/** A write as the journal keeps it: a setting's value sealed. */
type Entry = Exclude<Write, { op: "setting" }> | { op: "setting"; name: string; sealed: string };

export class EtcdBackend implements StoreBackend {
  private readonly client: Etcd3;
  private readonly key: Buffer;
  private readonly k: ReturnType<typeof keys>;
  /** The version key as this manager last saw it (load, its commits, the watch, a refused commit). */
  private seen: VersionState = { version: 0, raw: undefined };
  /** The last version the store has: loaded, committed here, or delivered by the watch. */
  private known = 0;
  /** The etcd revision load() read at: the watch starts after it. */
  private revision: bigint | undefined;
  /** This manager's commit in flight: the watch does not deliver it as foreign, and notes when it sees it. */
  private mine: Attempt | undefined;
  /** A split commit's roll-forward after its commit point. */
  private rolling: Promise<void> | undefined;
  private healthState: { ok: boolean; reason?: string } = { ok: true };
  /** Commits in flight, rejected when the probe finds etcd unwritable. */
  private readonly inFlight = new Set<(err: Error) => void>();
  private readonly stopWatches = new Set<() => void>();
  private probeTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly o: EtcdBackendOptions) {
    this.client = connectEtcd({ endpoints: o.endpoints, tls: o.tls });
    this.key = o.storeKey;
    this.k = keys(o.prefix ?? DEFAULT_PREFIX);
    void this.probe();
  }

  /** Whether etcd answers linearizable reads now (it has quorum); `reason` says what the probe saw when not. */
  health(): { ok: boolean; reason?: string } {
    return { ...this.healthState };
  }

  async load(): Promise<PersistedState> {
    const { revision, kvs } = await this.readAll();
    const state: PersistedState = { version: 0, objects: { node: [], network: [], service: [], task: [] }, settings: {} };
    const objects = new Map<string, Write & { op: "put" }>();
    const journal: IKeyValue[] = [];
    let version: VersionState = { version: 0, raw: undefined };
    for (const kv of kvs) {
      const key = kv.key.toString();
      if (key === this.k.version) version = parseVersion(kv);
      else if (key.startsWith(this.k.objects)) {
        const w = this.objectWrite(key, kv.value);
        objects.set(`${w.kind}/${w.object.id}`, w);
      } else if (key.startsWith(this.k.settings)) {
        const name = key.slice(this.k.settings.length);
        state.settings[name] = this.open(name, kv.value.toString());
      } else if (key.startsWith(this.k.journal)) journal.push(kv);
    }
    // a split commit past its commit point is committed: what it writes is part of the state
    const pending = version.pending !== undefined ? this.parseParts(version, journal) : [];
    for (const e of pending) {
      if (e.op === "put") objects.set(`${e.kind}/${e.object.id}`, e);
      else if (e.op === "delete") objects.delete(`${e.kind}/${e.id}`);
      else state.settings[e.name] = this.open(e.name, e.sealed);
    }
    for (const w of objects.values()) (state.objects[w.kind] as unknown[]).push(w.object);
    state.version = version.version;
    this.revision = revision;
    this.seen = version;
    this.known = version.version;
    if (version.pending !== undefined) await this.rollForward(version, pending);
    return state;
  }

  async commit(version: number, writes: readonly Write[]): Promise<void> {
    if (!this.healthState.ok) throw this.unavailable();
    if (version - 1 < this.seen.version) throw new StaleWrite(this.seen.version);
    if (version - 1 > this.seen.version) throw new Error(`commit of version ${version} on a store at version ${this.seen.version}`);
    const entries = writes.map((w) => this.entry(w));
    const attempt = newAttempt();
    let settle!: (err: Error) => void;
    // the probe finding etcd unwritable ends the wait at once; what became of the write the watch tells
    const lost = new Promise<void>((resolve, reject) => {
      settle = (err) => {
        if (attempt.seen) return resolve(); // the watch saw it committed
        attempt.cancelled = true;
        if (this.mine === attempt) this.mine = undefined;
        reject(err);
      };
    });
    this.inFlight.add(settle);
    const writing = this.write(version, entries, attempt);
    writing.catch(() => {}); // when `lost` wins, its outcome is the watch's to tell
    try {
      await Promise.race([lost, writing]);
    } catch (err) {
      if (attempt.seen) return; // the call failed after etcd applied it, and the watch saw that
      if (err instanceof StaleWrite || err instanceof ChangeTooLarge) throw err;
      if (refusedUnsent(err)) throw this.unavailable(failure(err, COMMIT_TIMEOUT_MS)); // never sent: nothing to learn
      const why = err instanceof StoreUnavailable ? err.message : `cannot write to etcd: ${failure(err, COMMIT_TIMEOUT_MS)} (endpoints ${this.o.endpoints.join(", ")})`;
      throw new StoreUnavailable(`${why}: the change may or may not have been applied (the store learns which from etcd's watch)`);
    } finally {
      this.inFlight.delete(settle);
    }
  }

  /**
   * Fills an empty store with `state`, its version included (vipmesh store
   * migrate); refuses a store that holds anything.
   */
  async importState(state: PersistedState): Promise<void> {
    const current = await this.load();
    const objects = KINDS.reduce((n, k) => n + current.objects[k].length, 0);
    const settings = Object.keys(current.settings).length;
    if (current.version !== 0 || objects || settings) {
      throw new Error(`the etcd store under ${this.k.prefix} is not empty (version ${current.version}, ${objects} objects, ${settings} settings): migrate into a new one only`);
    }
    const writes: Write[] = [
      ...KINDS.flatMap((kind) => state.objects[kind].map((object): Write => ({ op: "put", kind, object }))),
      ...Object.entries(state.settings).map(([name, value]): Write => ({ op: "setting", name, value })),
    ];
    await this.write(state.version, writes.map((w) => this.entry(w)), newAttempt(), current.version);
    await this.rolling;
  }

  watch(fromVersion: number, onCommit: (c: ForeignCommit) => void, onError: (err: Error) => void): () => void {
    if (this.revision === undefined) throw new Error("watch() before load()");
    this.known = Math.max(this.known, fromVersion);
    const watcher = this.client
      .watch()
      .inRange({ start: this.k.start, end: this.k.end })
      .startRevision(String(this.revision + 1n))
      .watcher();
    /** Journal parts seen before their commit point, by version then part. */
    const parts = new Map<number, Map<string, IKeyValue>>();
    let queue = Promise.resolve();
    let stopped = false;
    const stop = () => {
      stopped = true;
      this.stopWatches.delete(stop);
      void watcher.cancel().catch(() => {});
    };
    const fail = (err: Error) => {
      if (stopped) return;
      stop();
      onError(err);
    };
    watcher.on("data", (res: IWatchResponse) => {
      queue = queue.then(() => (stopped ? undefined : this.onWatch(res, parts, onCommit, () => stopped))).catch(fail);
    });
    watcher.on("error", (err: Error) => {
      // etcd cancels a watch without a reason when the revisions it has to replay are compacted
      const reason = err.message.replace(/^Watcher canceled: ?/, "") || "etcd compacted the changes it had to replay";
      fail(new Error(`the etcd watch was cancelled: ${reason}`));
    });
    this.stopWatches.add(stop);
    return stop;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.probeTimer);
    await this.rolling;
    for (const stop of [...this.stopWatches]) stop();
    this.client.close();
  }

  // ---- writing ---------------------------------------------------------------

  /**
   * Writes `entries` as `version` over `base` (StaleWrite unless etcd is still there): one transaction,
   * or a split commit, which resolves at its commit point (the roll-forward
   * goes on; the next commit or close waits for it).
   */
  private async write(version: number, entries: Entry[], attempt: Attempt, base = version - 1): Promise<void> {
    await this.rolling;
    if (this.seen.pending !== undefined) {
      // another manager may have rolled it forward (its parts gone) and gone on: then etcd's version says where things are
      await this.rollForward(this.seen, undefined).catch(async () => {
        const now = await this.client.kv.range({ key: Buffer.from(this.k.version) }, { deadline: Date.now() + COMMIT_TIMEOUT_MS });
        this.see(parseVersion(now.kvs[0]));
      });
    }
    // while this waited, the watch or a roll-forward may have moved on past what the change was made on
    if (this.seen.version !== base || this.seen.pending !== undefined) throw new StaleWrite(this.seen.version);
    const guard = this.guard(this.seen);
    const sweep = this.sweep(version);
    const ops = entries.map((e) => this.op(e));
    if (ops.length + 2 <= MAX_OPS && bytes([...ops, sweep]) + VERSION_BYTES <= MAX_BYTES) return this.advance(version, guard, [...ops, sweep], undefined, attempt);
    const chunks = partition(entries, (e) => JSON.stringify(e).length + 1, Infinity, MAX_BYTES - VERSION_BYTES);
    for (const [i, chunk] of chunks.entries()) {
      if (attempt.cancelled) return;
      await this.txnOrStale([guard], [put(this.k.part(version, attempt.id, i), JSON.stringify(chunk))], undefined);
    }
    if (attempt.cancelled) return;
    await this.advance(version, guard, [sweep], chunks.length, attempt);
    if (this.o.stopAfterCommitPoint || attempt.cancelled) return;
    const pending = this.seen;
    this.rolling = this.rollForward(pending, entries)
      .catch(() => {}) // the next commit, or the next manager to load, rolls it forward
      .finally(() => (this.rolling = undefined));
  }

  /** Sets the version to `version` (pending `parts`) with `ops`, guarded; StaleWrite when the guard fails. */
  private async advance(version: number, guard: ICompare, ops: IRequestOp[], parts: number | undefined, attempt: Attempt): Promise<void> {
    if (attempt.cancelled) return; // reported lost while it waited: never sent, so the watch has nothing to tell
    const state = newVersion(version, parts, attempt.id);
    attempt.raw = state.raw!.toString();
    this.mine = attempt;
    try {
      await this.txnOrStale([guard], [...ops, put(this.k.version, attempt.raw)], attempt.raw);
    } finally {
      if (this.mine === attempt) this.mine = undefined;
    }
    if (attempt.cancelled) return; // the commit was reported lost: the watch delivers it
    this.see(state);
    this.known = Math.max(this.known, version);
  }

  /**
   * Applies a pending split commit's parts and ends it ({"version":N}),
   * each transaction guarded by the pending value: whoever gets there
   * first rolls it forward, the others' guards fail and they stop.
   */
  private async rollForward(pending: VersionState, entries: Entry[] | undefined): Promise<void> {
    const dir = this.k.partsOf(pending.version, pending.commit!);
    entries ??= this.parseParts(pending, (await this.range(dir, undefined)).kvs);
    const guard = this.guard(pending);
    const ops = entries.map((e) => this.op(e));
    const end = [{ request_delete_range: { key: Buffer.from(dir), range_end: prefixEnd(dir) } }];
    const batches = partition(ops, (op) => bytes([op]), MAX_OPS - 2, MAX_BYTES - VERSION_BYTES);
    const last = batches.pop() ?? [];
    for (const batch of batches) {
      const r = await this.txn([guard], batch);
      if (!r.ok) return this.see(r.current);
    }
    const done: VersionState = { version: pending.version, raw: Buffer.from(JSON.stringify({ version: pending.version })) };
    const r = await this.txn([guard], [...last, ...end, put(this.k.version, done.raw!.toString())]);
    this.see(r.ok ? done : r.current);
  }

  /** A transaction that throws StaleWrite when its guard fails, unless the version already holds `mine` (a retried call that had been applied). */
  private async txnOrStale(compare: ICompare[], success: IRequestOp[], mine: string | undefined): Promise<void> {
    const r = await this.txn(compare, success);
    if (r.ok || (mine !== undefined && r.current.raw?.toString() === mine)) return;
    this.see(r.current);
    throw new StaleWrite(r.current.version);
  }

  private async txn(compare: ICompare[], success: IRequestOp[]): Promise<{ ok: true } | { ok: false; current: VersionState }> {
    const res = await this.client.kv.txn(
      { compare, success, failure: [{ request_range: { key: Buffer.from(this.k.version) } }] },
      { deadline: Date.now() + COMMIT_TIMEOUT_MS },
    );
    if (res.succeeded) return { ok: true };
    return { ok: false, current: parseVersion(res.responses[0]?.response_range.kvs[0]) };
  }

  /** The compare that holds while the version key is still `v`. */
  private guard(v: VersionState): ICompare {
    const key = Buffer.from(this.k.version);
    // etcd fails every value compare on a missing key: an empty store is "never created"
    return v.raw === undefined ? { key, target: "Create", result: "Equal", create_revision: 0 } : { key, target: "Value", result: "Equal", value: v.raw };
  }

  /** Deletes journal parts of versions before `version`: splits that never reached their commit point (a commit of `version` proves them dead). */
  private sweep(version: number): IRequestOp {
    return { request_delete_range: { key: Buffer.from(this.k.journal), range_end: Buffer.from(this.k.journalOf(version)) } };
  }

  /** Moves `seen` forward (never back: the watch may lag this manager's own commits). */
  private see(v: VersionState): void {
    if (v.version > this.seen.version || (v.version === this.seen.version && this.seen.pending !== undefined && v.pending === undefined)) this.seen = v;
  }

  // ---- reading ---------------------------------------------------------------

  /** Every key of the store (not the HA keys) at one revision, page by page. */
  private async readAll(): Promise<{ revision: bigint; kvs: IKeyValue[] }> {
    let revision: string | undefined;
    const kvs: IKeyValue[] = [];
    let from = Buffer.from(this.k.start);
    for (;;) {
      const res = await this.client.kv.range(
        { key: from, range_end: Buffer.from(this.k.end), limit: LOAD_PAGE, ...(revision ? { revision } : {}) },
        { deadline: Date.now() + LOAD_TIMEOUT_MS },
      );
      revision ??= res.header.revision;
      kvs.push(...res.kvs);
      const lastKey = res.kvs.at(-1)?.key;
      if (!res.more || !lastKey) return { revision: BigInt(revision), kvs };
      from = Buffer.concat([lastKey, Buffer.from([0])]);
    }
  }

  private range(prefix: string, revision: bigint | undefined) {
    return this.client.kv.range(
      { key: Buffer.from(prefix), range_end: prefixEnd(prefix), ...(revision !== undefined ? { revision: String(revision) } : {}) },
      { deadline: Date.now() + LOAD_TIMEOUT_MS },
    );
  }

  /**
   * One watch response: each revision that sets the version key is a
   * commit. A split commit's parts arrive before its commit point; its
   * roll-forward after, and is skipped (its version is known by then).
   */
  private async onWatch(
    res: IWatchResponse,
    parts: Map<number, Map<string, IKeyValue>>,
    onCommit: (c: ForeignCommit) => void,
    stopped: () => boolean,
  ): Promise<void> {
    const byRevision = new Map<string, typeof res.events>();
    for (const ev of res.events) byRevision.set(ev.kv.mod_revision, [...(byRevision.get(ev.kv.mod_revision) ?? []), ev]);
    for (const [revision, events] of byRevision) {
      let version: VersionState | undefined;
      const writes: Write[] = [];
      for (const { type, kv } of events) {
        const key = kv.key.toString();
        if (key === this.k.version) {
          if (type === "Put") version = parseVersion(kv);
        } else if (key.startsWith(this.k.journal)) {
          if (type !== "Put") continue;
          const v = Number(key.slice(this.k.journal.length).split("/")[0]);
          parts.set(v, (parts.get(v) ?? new Map()).set(key, kv));
        } else if (key.startsWith(this.k.objects)) {
          if (type === "Put") writes.push(this.objectWrite(key, kv.value));
          else {
            const [kind, id] = splitKind(key.slice(this.k.objects.length));
            writes.push({ op: "delete", kind, id });
          }
        } else if (key.startsWith(this.k.settings) && type === "Put") {
          const name = key.slice(this.k.settings.length);
          writes.push({ op: "setting", name, value: this.open(name, kv.value.toString()) });
        }
      }
      if (!version) continue; // a roll-forward's writes, a sweep
      this.see(version);
      for (const v of parts.keys()) if (v < version.version || (v === version.version && !version.pending)) parts.delete(v);
      const mine = this.mine?.raw === version.raw!.toString() ? this.mine : undefined;
      if (mine) mine.seen = true;
      if (version.version <= this.known || mine) {
        this.known = Math.max(this.known, version.version);
        continue;
      }
      if (version.version !== this.known + 1) throw new Error(`the etcd watch went from version ${this.known} to ${version.version}: a commit was missed`);
      let commitWrites = writes;
      if (version.pending !== undefined) {
        const dir = this.k.partsOf(version.version, version.commit!);
        const buffered = [...(parts.get(version.version)?.values() ?? [])].filter((kv) => kv.key.toString().startsWith(dir));
        const kvs = buffered.length === version.pending ? buffered : (await this.range(dir, BigInt(revision))).kvs;
        if (stopped()) return; // the store reloaded meanwhile: this watch's view is not its any more
        commitWrites = this.parseParts(version, kvs).map((e) => (e.op === "setting" ? { op: "setting", name: e.name, value: this.open(e.name, e.sealed) } : e));
      }
      parts.delete(version.version);
      this.known = version.version;
      onCommit({ version: version.version, writes: commitWrites });
    }
  }

  // ---- health ----------------------------------------------------------------

  /** Every PROBE_INTERVAL_MS a linearizable read: it answers only while etcd has quorum. */
  private async probe(): Promise<void> {
    const started = Date.now();
    try {
      await this.client.kv.range({ key: Buffer.from(this.k.version) }, { deadline: started + PROBE_TIMEOUT_MS });
      this.healthState = { ok: true };
    } catch (err) {
      if (this.closed) return;
      // while etcd3 refuses calls itself (a member failed repeatedly) the reason stays what the member did
      if (this.healthState.ok || !refusedUnsent(err)) this.healthState = { ok: false, reason: failure(err, PROBE_TIMEOUT_MS) };
      const e = this.unavailable(this.healthState.reason);
      for (const reject of [...this.inFlight]) reject(e);
    }
    if (!this.closed) this.probeTimer = setTimeout(() => void this.probe(), Math.max(0, started + PROBE_INTERVAL_MS - Date.now()));
  }

  private unavailable(reason = this.healthState.reason): StoreUnavailable {
    return new StoreUnavailable(`etcd has no quorum: ${reason} (endpoints ${this.o.endpoints.join(", ")})`);
  }

  // ---- encoding --------------------------------------------------------------

  /** The writes of a pending split commit, from its parts (among `kvs`) in order. */
  private parseParts(v: VersionState, kvs: IKeyValue[]): Entry[] {
    const dir = this.k.partsOf(v.version, v.commit!);
    const mine = kvs.filter((kv) => kv.key.toString().startsWith(dir)).sort((a, b) => Buffer.compare(a.key, b.key));
    if (mine.length !== v.pending) throw new Error(`split commit ${v.version} has ${mine.length} of its ${v.pending} parts in etcd`);
    return mine.flatMap((kv) => JSON.parse(kv.value.toString()) as Entry[]);
  }

  private entry(w: Write): Entry {
    return w.op === "setting" ? { op: "setting", name: w.name, sealed: seal(this.key, w.name, w.value) } : w;
  }

  private op(e: Entry): IRequestOp {
    if (e.op === "put") return put(this.k.object(e.kind, e.object.id), JSON.stringify(e.object));
    if (e.op === "delete") return { request_delete_range: { key: Buffer.from(this.k.object(e.kind, e.id)) } };
    return put(this.k.setting(e.name), e.sealed);
  }

  private objectWrite(key: string, value: Buffer): Write & { op: "put" } {
    const [kind] = splitKind(key.slice(this.k.objects.length));
    return { op: "put", kind, object: JSON.parse(value.toString()) };
  }

  private open(name: string, sealed: string): string {
    try {
      return open(this.key, name, sealed);
    } catch {
      throw new Error("the store key does not open this cluster's secrets: is --store-key the file the other managers use?");
    }
  }
}

/** etcd3 refused the call without sending it: its circuit breaker holds a member that failed repeatedly off for 5 s. */
const refusedUnsent = (err: unknown) => (err as { isBrokenCircuitError?: boolean } | undefined)?.isBrokenCircuitError === true;

/** What a failed call says, for a person. */
function failure(err: unknown, timeoutMs: number): string {
  if (refusedUnsent(err)) return "its calls keep failing";
  const what = err instanceof Error ? err.message : String(err);
  return /deadline/i.test(what) ? `no answer within ${timeoutMs / 1000} s` : what;
}

/** One write that etcd cannot take in a request. */
export class ChangeTooLarge extends Error {}

function keys(prefix: string) {
  const pad = (n: number) => String(n).padStart(PAD, "0");
  return {
    prefix,
    version: `${prefix}version`,
    objects: `${prefix}o/`,
    settings: `${prefix}s/`,
    journal: `${prefix}j/`,
    object: (kind: ObjectKind, id: string) => `${prefix}o/${kind}/${id}`,
    setting: (name: string) => `${prefix}s/${name}`,
    /** Padded: part keys sort by version, and a range [j/, j/<N>) holds every version before N. */
    journalOf: (version: number) => `${prefix}j/${pad(version)}`,
    partsOf: (version: number, commit: string) => `${prefix}j/${pad(version)}/${commit}/`,
    part: (version: number, commit: string, i: number) => `${prefix}j/${pad(version)}/${commit}/${pad(i)}`,
    // the store's keys sort between j/ and version: ha/ (and anything else) stays out of loads and watches
    start: `${prefix}j/`,
    end: `${prefix}version\0`,
  };
}

function splitKind(rest: string): [ObjectKind, string] {
  const slash = rest.indexOf("/");
  const kind = rest.slice(0, slash) as ObjectKind;
  if (slash < 0 || !KINDS.includes(kind)) throw new Error(`unexpected key in the store: o/${rest}`);
  return [kind, rest.slice(slash + 1)];
}

function parseVersion(kv: IKeyValue | undefined): VersionState {
  if (!kv) return { version: 0, raw: undefined };
  const v = JSON.parse(kv.value.toString()) as { version: number; pending?: number; commit?: string };
  return { version: v.version, ...(v.pending !== undefined ? { pending: v.pending, commit: v.commit } : {}), raw: kv.value };
}

/** A commit's version value: unique, so a compare on it never matches an older value (and a retried call finds its own). */
function newVersion(version: number, pending: number | undefined, commit: string): VersionState {
  const value = pending !== undefined ? { version, pending, commit } : { version, commit };
  return { version, ...(pending !== undefined ? { pending, commit } : {}), raw: Buffer.from(JSON.stringify(value)) };
}

const newAttempt = (): Attempt => ({ id: randomBytes(8).toString("hex"), cancelled: false, raw: undefined, seen: false });


const put = (key: string, value: string): IRequestOp => ({ request_put: { key: Buffer.from(key), value: Buffer.from(value) } });

const bytes = (ops: IRequestOp[]) =>
  ops.reduce((n, op) => n + OP_OVERHEAD + (op.request_put ? op.request_put.key!.length + op.request_put.value!.length : (op.request_delete_range?.key?.length ?? 0) * 2), 0);

/** The end of etcd's range for every key under `prefix`. */
function prefixEnd(prefix: string): Buffer {
  const b = Buffer.from(prefix);
  b[b.length - 1]! += 1;
  return b;
}

/** Splits `items` in order into runs of at most `maxCount` and `maxBytes` (by `size`); one item over `maxBytes` cannot be stored. */
function partition<T>(items: T[], size: (item: T) => number, maxCount: number, maxBytes: number): T[][] {
  const out: T[][] = [];
  let run: T[] = [];
  let total = 0;
  for (const item of items) {
    const n = size(item);
    if (n > maxBytes) throw new ChangeTooLarge(`one write of this change is ${n} bytes: etcd takes at most ${maxBytes} in one request`);
    if (run.length && (run.length >= maxCount || total + n > maxBytes)) {
      out.push(run);
      run = [];
      total = 0;
    }
    run.push(item);
    total += n;
  }
  if (run.length) out.push(run);
  return out;
}
