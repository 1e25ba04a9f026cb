// The store backends against the same cases: SQLite in a temporary
// directory, etcd as a real single member on 127.0.0.1. etcd's own cases
// follow: secrets sealed in etcd, a commit past etcd's request limits split
// and seen whole, a split rolled forward by the next opener, and no quorum
// answered at once.

import { invalid, type ObjectByKind, type ObjectKind, type Task, VipmeshError } from "@vipmesh/core";
import type { Etcd3 } from "@vipmesh/etcd";
import { tempDir, waitFor } from "@vipmesh/testing";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ClusterStore } from "../src/store/cluster-store.ts";
import { type ForeignCommit, type PersistedState, StaleWrite, type StoreBackend, StoreUnavailable, type Write } from "../src/store/backend.ts";
import { EtcdBackend, type EtcdBackendOptions } from "../src/store/etcd.ts";
import { newStoreKey } from "../src/store/secret-box.ts";
import { SqliteBackend } from "../src/store/sqlite.ts";
import { etcdDescribe, startTestEtcd, type TestEtcd } from "@vipmesh/testing/etcd";

const task = (id: string, padding = 0): Task => ({ id, serviceId: "svc", serviceName: "web", slot: 1, nodeId: "", note: "x".repeat(padding) }) as unknown as Task;
const put = <K extends ObjectKind>(kind: K, object: ObjectByKind[K]): Write => ({ op: "put", kind, object });
const ids = (s: PersistedState, kind: ObjectKind) => s.objects[kind].map((o) => o.id).sort();

/** A new empty store: each call of what it returns opens one more backend ("manager") on it. */
type FreshStore = () => () => StoreBackend;

const opened: StoreBackend[] = [];
const stores: ClusterStore[] = [];
afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close()));
  await Promise.all(opened.splice(0).map((b) => b.close()));
});

const openStore = async (backend: StoreBackend) => {
  const store = await ClusterStore.open(backend);
  stores.push(store);
  return store;
};

/** One etcd for the file (started by the etcd block), each test under a prefix of its own. */
let etcd: TestEtcd | undefined;
let raw: Etcd3 | undefined;
let prefixes = 0;

const dirs: { remove: () => void }[] = [];
afterAll(() => dirs.forEach((d) => d.remove()));

const sqliteStore: FreshStore = () => {
  const dir = tempDir("vipmesh-store-sqlite-");
  dirs.push(dir);
  return () => {
    const b = new SqliteBackend(dir.path);
    opened.push(b);
    return b;
  };
};

/** Each test its own prefix in the one etcd, its own store key. */
function etcdStore() {
  const prefix = `/test${++prefixes}/`;
  const storeKey = newStoreKey();
  const open = (more: Partial<EtcdBackendOptions> = {}) => {
    const b = new EtcdBackend({ endpoints: [etcd!.endpoint], tls: undefined, storeKey, prefix, ...more });
    opened.push(b);
    return b;
  };
  return { prefix, storeKey, open };
}

/** The cases both backends pass. */
const cases = (fresh: FreshStore) => {
  it("starts empty at version 0", async () => {
    const open = fresh();
    const s = await open().load();
    expect(s.version).toBe(0);
    expect(ids(s, "task")).toEqual([]);
  });

  it("commits objects, deletes and settings, and a new opener loads them", async () => {
    const open = fresh();
    const a = open();
    await a.load();
    await a.commit(1, [put("task", task("t1")), put("task", task("t2")), { op: "setting", name: "token", value: "s3cret" }]);
    await a.commit(2, [{ op: "delete", kind: "task", id: "t1" }]);
    const s = await open().load();
    expect(s.version).toBe(2);
    expect(ids(s, "task")).toEqual(["t2"]);
    expect(s.settings).toEqual({ token: "s3cret" });
  });

  it("refuses a commit over a version another writer moved (StaleWrite), and keeps none of it", async () => {
    const open = fresh();
    const a = open();
    const b = open();
    await a.load();
    await b.load();
    await a.commit(1, [put("task", task("mine"))]);
    const refused = await Promise.resolve()
      .then(() => b.commit(1, [put("task", task("theirs")), { op: "setting", name: "k", value: "v" }]))
      .catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(StaleWrite);
    expect((refused as StaleWrite).seen).toBe(1);
    const s = await open().load();
    expect(s.version).toBe(1);
    expect(ids(s, "task")).toEqual(["mine"]);
    expect(s.settings).toEqual({});
  });

  it("through ClusterStore: a change that throws leaves nothing, in memory or in the store", async () => {
    const open = fresh();
    const store = await openStore(open());
    await store.update((tx) => tx.put("task", task("kept")));
    const refused = store.update((tx) => {
      tx.put("task", task("t2"));
      tx.remove("task", "kept");
      tx.setSetting("s", "v");
      throw invalid("refused");
    });
    await expect(refused).rejects.toThrow("refused");
    expect(store.task("t2")).toBeUndefined();
    expect(store.task("kept")).toBeDefined();
    expect(store.settings.get("s")).toBeUndefined();
    const s = await open().load();
    expect(s.version).toBe(1);
    expect(ids(s, "task")).toEqual(["kept"]);
    expect(s.settings).toEqual({});
  });

  it("through ClusterStore: a change's objects and settings are there for the next opener", async () => {
    const open = fresh();
    const a = await openStore(open());
    await a.update((tx) => {
      tx.put("task", task("t1"));
      tx.setSetting("join-secret", "s3cret");
    });
    await a.settings.set("overlay-key", "k1");
    const b = await openStore(open());
    expect(b.version).toBe(2);
    expect(b.task("t1")).toMatchObject({ id: "t1", version: 1 });
    expect(b.settings.get("join-secret")).toBe("s3cret");
    expect(b.settings.get("overlay-key")).toBe("k1");
  });

  it("commits 1,000 objects at once (etcd: split past its request limits)", async () => {
    const open = fresh();
    const a = open();
    await a.load();
    const tasks = Array.from({ length: 1000 }, (_, i) => task(`t${String(i).padStart(4, "0")}`, 1500));
    await a.commit(1, tasks.map((t) => put("task", t)));
    await a.commit(2, [put("task", task("after"))]);
    const s = await open().load();
    expect(s.version).toBe(2);
    expect(s.objects.task).toHaveLength(1001);
    expect(s.objects.task.find((t) => t.id === "t0999")).toEqual(tasks[999]);
  });
};

describe("SQLite backend", () => cases(sqliteStore));

etcdDescribe("etcd backend", () => {
  beforeAll(async () => {
    etcd = await startTestEtcd();
    raw = etcd.client();
  });
  afterAll(() => etcd?.stop());

  describe("shared cases", () => cases(() => etcdStore().open));

  it("through ClusterStore: two managers' changes meet, each seeing the other's; a beaten change runs again on top", async () => {
    const store = etcdStore();
    const a = await openStore(store.open());
    const b = await openStore(store.open());
    const bump = (s: ClusterStore, id: string) =>
      s.update((tx) => {
        tx.put("task", task(id));
        tx.setSetting("n", String(Number(tx.setting("n") ?? "0") + 1));
      });
    await Promise.all(Array.from({ length: 10 }, (_, i) => [bump(a, `a${i}`), bump(b, `b${i}`)]).flat());
    for (const s of [a, b]) await waitFor("both managers' 20 changes", () => s.settings.get("n") === "20" && s.list("task").length === 20);
    // changes that waited for a commit on its way went to etcd together: at most one version each, the same at both managers
    expect(a.version).toBe(b.version);
    expect(a.version).toBeLessThanOrEqual(20);
    const before = a.version;
    // a split commit reaches the other manager whole
    await a.update((tx) => {
      for (let i = 0; i < 1000; i++) tx.put("task", task(`big${i}`, 1500));
    });
    await waitFor("the split commit at the other manager", () => b.list("task").length === 1020);
    expect(b.version).toBe(before + 1);
  });

  it("keeps settings sealed in etcd, and a wrong store key says so", async () => {
    const store = etcdStore();
    const a = store.open();
    await a.load();
    await a.commit(1, [{ op: "setting", name: "overlay-key", value: "very-secret-value" }]);
    const value = (await raw!.get(`${store.prefix}s/overlay-key`).string()) ?? "";
    expect(value).toMatch(/^v1:/);
    expect(value).not.toContain("very-secret-value");
    expect(Buffer.from(value.slice(3), "base64").toString("latin1")).not.toContain("very-secret-value");
    const other = new EtcdBackend({ endpoints: [etcd!.endpoint], tls: undefined, storeKey: newStoreKey(), prefix: store.prefix });
    opened.push(other);
    await expect(other.load()).rejects.toThrow("the store key does not open this cluster's secrets: is --store-key the file the other managers use?");
  });

  it("delivers other managers' commits through the watch, each once, its own not", async () => {
    const store = etcdStore();
    const a = store.open();
    const b = store.open();
    await a.load();
    const seen: ForeignCommit[] = [];
    const errors: Error[] = [];
    const from = (await b.load()).version;
    b.watch!(from, (c) => seen.push(c), (e) => errors.push(e));
    await a.commit(1, [put("task", task("t1")), { op: "setting", name: "n", value: "v" }]);
    await a.commit(2, [{ op: "delete", kind: "task", id: "t1" }]);
    await waitFor("the watch to deliver version 2", () => seen.length === 2);
    expect(seen[0]).toEqual({ version: 1, writes: expect.arrayContaining([put("task", task("t1")), { op: "setting", name: "n", value: "v" }]) });
    expect(seen[1]).toEqual({ version: 2, writes: [{ op: "delete", kind: "task", id: "t1" }] });
    // b's own commit is not delivered back to it
    await b.commit(3, [put("task", task("t3"))]);
    await a.commit(4, [put("task", task("t4"))]).catch(() => undefined); // a has not seen 3: StaleWrite
    await new Promise((r) => setTimeout(r, 300));
    expect(seen.map((c) => c.version)).toEqual([1, 2]);
    expect(errors).toEqual([]);
  });

  it("delivers a split commit whole, once, to another manager's watch", async () => {
    const store = etcdStore();
    const a = store.open();
    const b = store.open();
    await a.load();
    const seen: ForeignCommit[] = [];
    b.watch!((await b.load()).version, (c) => seen.push(c), (e) => expect.fail(e.message));
    const writes = Array.from({ length: 1000 }, (_, i) => put("task", task(`t${i}`, 1500)));
    await a.commit(1, writes);
    await a.commit(2, [put("task", task("small"))]); // after the roll-forward
    await waitFor("the watch to deliver version 2", () => seen.length === 2);
    expect(seen[0]!.version).toBe(1);
    expect(seen[0]!.writes).toHaveLength(1000);
    expect(seen[0]!.writes[999]).toEqual(writes[999]);
    expect(seen[1]).toEqual({ version: 2, writes: [put("task", task("small"))] });
    // the journal is gone and the version is plain
    expect(await raw!.getAll().prefix(`${store.prefix}j/`).keys()).toEqual([]);
    expect(JSON.parse((await raw!.get(`${store.prefix}version`).string())!)).toMatchObject({ version: 2 });
  });

  it("delivers a split commit whose parts were written before its watch began (read from etcd at the commit point)", async () => {
    const store = etcdStore();
    const b = store.open();
    const dir = `${store.prefix}j/${"1".padStart(16, "0")}/0123456789abcdef/`;
    await raw!.put(`${dir}${"0".padStart(16, "0")}`).value(JSON.stringify([put("task", task("t1"))]));
    await raw!.put(`${dir}${"1".padStart(16, "0")}`).value(JSON.stringify([put("task", task("t2"))]));
    const seen: ForeignCommit[] = [];
    b.watch!((await b.load()).version, (c) => seen.push(c), (e) => expect.fail(e.message));
    await raw!.put(`${store.prefix}version`).value(JSON.stringify({ version: 1, pending: 2, commit: "0123456789abcdef" }));
    await waitFor("the split commit", () => seen.length === 1);
    expect(seen[0]).toEqual({ version: 1, writes: [put("task", task("t1")), put("task", task("t2"))] });
  });

  it("rolls a split commit forward when its writer stopped after the commit point", async () => {
    const store = etcdStore();
    const a = store.open({ stopAfterCommitPoint: true });
    await a.load();
    const writes = Array.from({ length: 1000 }, (_, i) => put("task", task(`t${i}`, 1500)));
    await a.commit(1, writes); // committed: its roll-forward is left to others
    const version = JSON.parse((await raw!.get(`${store.prefix}version`).string())!) as { version: number; pending?: number };
    expect(version).toMatchObject({ version: 1 });
    expect(version.pending).toBeGreaterThan(1);
    expect(await raw!.getAll().prefix(`${store.prefix}o/`).keys()).toEqual([]);
    const b = store.open();
    const s = await b.load();
    expect(s.version).toBe(1);
    expect(s.objects.task).toHaveLength(1000);
    // rolled forward in etcd: objects in place, journal gone, version plain
    expect(await raw!.getAll().prefix(`${store.prefix}o/task/`).count()).toBe(1000);
    expect(await raw!.getAll().prefix(`${store.prefix}j/`).keys()).toEqual([]);
    expect(JSON.parse((await raw!.get(`${store.prefix}version`).string())!)).toEqual({ version: 1 });
    await b.commit(2, [put("task", task("next"))]);
    expect((await store.open().load()).objects.task).toHaveLength(1001);
  });

  it("two managers splitting the same version at once: one wins whole, the other's writes are nowhere", async () => {
    const store = etcdStore();
    const [a, b] = [store.open(), store.open()];
    await Promise.all([a.load(), b.load()]);
    const writes = (who: string) => Array.from({ length: 600 }, (_, i) => put("task", task(`${who}${i}`, 2000)));
    const results = await Promise.allSettled([a.commit(1, writes("a")), b.commit(1, writes("b"))]);
    const won = results.map((r) => r.status === "fulfilled");
    expect(won.filter(Boolean)).toHaveLength(1);
    expect((results.find((r) => r.status === "rejected") as PromiseRejectedResult).reason).toBeInstanceOf(StaleWrite);
    const winner = won[0] ? "a" : "b";
    const s = await store.open().load();
    expect(s.version).toBe(1);
    expect(s.objects.task.every((t) => t.id.startsWith(winner))).toBe(true);
    expect(s.objects.task).toHaveLength(600);
  });

  it("ends the watch (the store reloads) when etcd compacted the revisions it had to replay", async () => {
    const store = etcdStore();
    const [a, b] = [store.open(), store.open()];
    await a.load();
    const from = (await b.load()).version;
    await a.commit(1, [put("task", task("t1"))]);
    await a.commit(2, [put("task", task("t2"))]);
    const { header } = await raw!.kv.range({ key: Buffer.from(`${store.prefix}version`) });
    await raw!.kv.compact({ revision: header.revision, physical: true });
    const errors: Error[] = [];
    b.watch!(from, () => expect.fail("a commit from a compacted watch"), (e) => errors.push(e));
    await waitFor("the watch to end", () => errors.length > 0);
    expect(errors.map((e) => e.message)).toEqual(["the etcd watch was cancelled: etcd compacted the changes it had to replay"]);
  });

  it("sweeps the journal parts of a split that never reached its commit point", async () => {
    const store = etcdStore();
    const a = store.open();
    await a.load();
    // parts of a version 1 whose writer died before its commit point
    await raw!.put(`${store.prefix}j/${"1".padStart(16, "0")}/0123456789abcdef/${"0".padStart(16, "0")}`).value("[]");
    await a.commit(1, [put("task", task("t1"))]);
    await a.commit(2, [put("task", task("t2"))]);
    expect(await raw!.getAll().prefix(`${store.prefix}j/`).keys()).toEqual([]);
  });

  it("imports a whole store into an empty one, its version kept, and refuses a store that is not empty", async () => {
    const from = sqliteStore()();
    await from.load();
    await from.commit(1, [put("task", task("t1")), { op: "setting", name: "ca-key", value: "PEM" }]);
    await from.commit(2, [put("task", task("t2"))]);
    const state = await from.load();
    const store = etcdStore();
    await store.open().importState(state);
    const s = await store.open().load();
    expect(s).toEqual({ ...state, objects: { ...state.objects, task: expect.arrayContaining(state.objects.task) } });
    expect(s.version).toBe(2);
    await expect(store.open().importState(state)).rejects.toThrow(/^the etcd store under \/test\d+\/ is not empty \(version 2, 2 objects, 1 settings\): migrate into a new one only$/);
  });

  // last: it stops etcd for a while
  it("without quorum refuses commits at once with StoreUnavailable, and works again once etcd is back", async () => {
    const etcdStoreOf = etcdStore();
    const a = etcdStoreOf.open();
    await a.load();
    await a.commit(1, [put("task", task("t1"))]);
    expect(a.health()).toEqual({ ok: true });
    const storeBackend = etcdStoreOf.open();
    const store = await openStore(storeBackend);
    etcd!.member.signal("SIGSTOP");
    try {
      let started = Date.now();
      const first = await Promise.resolve(a.commit(2, [put("task", task("t2"))])).catch((e: unknown) => e);
      expect(first).toBeInstanceOf(StoreUnavailable);
      expect(Date.now() - started).toBeLessThan(2_000);
      expect(a.health().ok).toBe(false);
      started = Date.now();
      const second = await Promise.resolve(a.commit(2, [put("task", task("t2"))])).catch((e: unknown) => e);
      expect(second).toBeInstanceOf(StoreUnavailable);
      expect((second as Error).message).toMatch(/^etcd has no quorum: .* \(endpoints http:\/\/127\.0\.0\.1:\d+\)$/);
      expect(Date.now() - started).toBeLessThan(50);
      // through the store: refused as UNAVAILABLE, nothing of it kept
      const refused = await store.update((tx) => tx.put("task", task("t9"))).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(VipmeshError);
      expect((refused as VipmeshError).message).toMatch(/^etcd has no quorum/);
      expect(store.task("t9")).toBeUndefined();
    } finally {
      etcd!.member.signal("SIGCONT");
    }
    await waitFor("the backend to find etcd healthy", () => a.health().ok, 15_000);
    // the first commit may have reached etcd before it stopped: the version says
    const stored = JSON.parse((await raw!.get(`${etcdStoreOf.prefix}version`).string())!) as { version: number };
    const b = etcdStoreOf.open();
    const s = await b.load();
    expect(s.version).toBe(stored.version);
    await b.commit(s.version + 1, [put("task", task("t3"))]);
    await waitFor("the store to be healthy again", () => storeBackend.health().ok, 15_000);
    await store.update((tx) => tx.put("task", task("t4")));
    expect(store.task("t3")).toBeDefined();
  }, 60_000);
});
