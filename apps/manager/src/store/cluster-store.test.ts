// ClusterStore's commit protocol against a backend that answers later (as
// etcd does), driven by hand: changes in turn, races lost to other managers,
// their commits from the watch. The real backends run the store suite in
// test/store.integration.test.ts.

import type { Node } from "@vipmesh/core";
import { describe, expect, it, vi } from "vitest";
import { type ForeignCommit, StaleWrite, type StoreBackend, StoreUnavailable, type Write } from "./backend.ts";
import { ClusterStore, type Commit } from "./cluster-store.ts";

const node = (id: string, ingressAddr = "", hostname = id): Node =>
  ({
    id,
    version: 0,
    createdAt: "",
    updatedAt: "",
    spec: { labels: {}, availability: "active" },
    description: { hostname, dataplane: "nftables", engineLabels: {}, runtimes: ["process"] },
    status: { state: "ready", message: "", addr: "", ingressAddr },
  }) as unknown as Node;

/** A backend whose commits wait until the test settles them; `deliver` plays the watch. */
class HeldBackend implements StoreBackend {
  readonly commits: { version: number; writes: readonly Write[]; settle: (err?: Error) => void }[] = [];
  private onCommit: ((c: ForeignCommit) => void) | undefined;
  onError: ((err: Error) => void) | undefined;
  /** What the next load() finds: an error to throw, or the state. */
  nextLoads: (Error | { version: number; nodes: Node[] })[] = [];
  load() {
    const next = this.nextLoads.shift() ?? { version: 0, nodes: [] };
    if (next instanceof Error) return Promise.reject(next);
    return Promise.resolve({ version: next.version, objects: { node: next.nodes, network: [], service: [], task: [] }, settings: {} });
  }
  commit(version: number, writes: readonly Write[]): Promise<void> {
    return new Promise((resolve, reject) => this.commits.push({ version, writes, settle: (err) => (err ? reject(err) : resolve()) }));
  }
  watch(_from: number, onCommit: (c: ForeignCommit) => void, onError: (err: Error) => void) {
    this.onCommit = onCommit;
    this.onError = onError;
    return () => {};
  }
  deliver(c: ForeignCommit): void {
    this.onCommit!(c);
  }
  close() {
    return Promise.resolve();
  }
}

const tick = () => new Promise((r) => setImmediate(r));

describe("ClusterStore", () => {
  it("runs changes in turn while a commit is on its way, each on the state before it", async () => {
    const backend = new HeldBackend();
    const store = await ClusterStore.open(backend);
    const a = store.update((tx) => tx.put("node", node("a")));
    const b = store.update((tx) => (tx.get("node", "a") ? "saw a" : "missed a"));
    await tick();
    expect(backend.commits).toHaveLength(1); // b waits
    backend.commits[0]!.settle();
    await a;
    expect(await b).toBe("saw a");
    expect(store.version).toBe(1);
  });

  it("commits the changes that came while one was on its way as one, each on the state the ones before it left; one that throws is undone alone", async () => {
    const backend = new HeldBackend();
    const store = await ClusterStore.open(backend);
    const seen: Commit[] = [];
    store.subscribe((c) => seen.push(c));
    const a = store.update((tx) => tx.put("node", node("a")));
    const undone: string[] = [];
    const b = store.update((tx) => {
      tx.onRollback(() => undone.push("b"));
      return tx.put("node", node("b"));
    });
    const c = store.update((tx) => tx.put("node", node("c", tx.get("node", "b") ? "saw b" : "")));
    const refused = store.update((tx) => {
      tx.onRollback(() => undone.push("refused"));
      tx.put("node", node("d"));
      tx.remove("node", "b");
      throw new Error("refused");
    });
    const d = store.update((tx) => (tx.get("node", "d") || !tx.get("node", "b") ? "saw the refused one" : tx.put("node", node("b", "again"))));
    await tick();
    expect(backend.commits).toHaveLength(1);
    backend.commits[0]!.settle();
    await a;
    await expect(refused).rejects.toThrow("refused");
    expect(undone).toEqual(["refused"]);
    expect(backend.commits).toHaveLength(2);
    expect(backend.commits[1]!.version).toBe(2);
    expect(backend.commits[1]!.writes.map((w) => (w.op === "put" ? `put ${w.object.id} ${(w.object as Node).status.ingressAddr}` : w.op))).toEqual([
      "put b again",
      "put c saw b",
    ]);
    expect(store.node("b")).toBeUndefined(); // nothing of it before its commit
    backend.commits[1]!.settle();
    expect((await c).status.ingressAddr).toBe("saw b");
    expect(await d).toMatchObject({ id: "b", version: 2 });
    await b;
    expect(store.version).toBe(2);
    expect(seen.map((x) => [x.version, x.changes.map((ch) => `${ch.action} ${ch.object.id}`)])).toEqual([
      [1, ["create a"]],
      [2, ["create b", "create c"]],
    ]);
  });

  it("commits the changes made within together() as one when it returns, each run at once on the ones before it", async () => {
    const store = await ClusterStore.openSqlite(null);
    const seen: Commit[] = [];
    store.subscribe((c) => seen.push(c));
    const [a, b, refused] = store.together(() => {
      const a = store.update((tx) => tx.put("node", node("a")));
      const b = store.update((tx) => tx.put("node", node("b", tx.get("node", "a") ? "saw a" : "")));
      const refused = store.update(() => {
        throw new Error("refused");
      });
      expect(store.node("a")).toBeUndefined(); // not committed yet
      return [a, b, refused];
    });
    expect((await b).status.ingressAddr).toBe("saw a");
    await a;
    await expect(refused).rejects.toThrow("refused");
    expect(seen.map((c) => [c.version, c.changes.map((ch) => `${ch.action} ${ch.object.id}`)])).toEqual([[1, ["create a", "create b"]]]);
    await store.update((tx) => tx.put("node", node("c")));
    expect(store.version).toBe(2); // alone, at once
  });

  it("undoes every change of a commit the backend refused, each caller hearing why; a lost race runs each again", async () => {
    const backend = new HeldBackend();
    const store = await ClusterStore.open(backend);
    const undone: string[] = [];
    const change = (id: string) =>
      store.update((tx) => {
        tx.onRollback(() => undone.push(id));
        return tx.put("node", node(id));
      });
    const a = change("a");
    const [b, c] = [change("b"), change("c")];
    await tick();
    backend.commits[0]!.settle();
    await a;
    backend.commits[1]!.settle(new StoreUnavailable("etcd has no quorum"));
    await expect(b).rejects.toMatchObject({ code: "unavailable", message: "etcd has no quorum" });
    await expect(c).rejects.toMatchObject({ code: "unavailable" });
    expect(undone).toEqual(["c", "b"]);
    expect(store.version).toBe(1);

    const d = change("d");
    const e = change("e");
    await tick();
    backend.deliver({ version: 2, writes: [{ op: "put", kind: "node", object: node("other") }] });
    backend.commits[2]!.settle(new StaleWrite(2)); // d, alone, lost; e waited
    await vi.waitFor(() => expect(backend.commits).toHaveLength(4));
    expect(backend.commits[3]!.version).toBe(3);
    backend.commits[3]!.settle(); // e
    await e;
    await vi.waitFor(() => expect(backend.commits).toHaveLength(5)); // d again, after its pause
    expect(backend.commits[4]!.writes).toMatchObject([{ op: "put", object: { id: "d" } }]);
    backend.commits[4]!.settle();
    expect((await d).version).toBe(4);
    expect(store.list("node").map((n) => n.id).sort()).toEqual(["a", "d", "e", "other"]);
  });

  it("runs a change again on the newer state when another manager committed first", async () => {
    const backend = new HeldBackend();
    const store = await ClusterStore.open(backend);
    const seen: Commit[] = [];
    store.subscribe((c) => seen.push(c));
    let runs = 0;
    const put = store.update((tx) => {
      runs++;
      const other = tx.get("node", "other");
      return tx.put("node", node("mine", other ? "after-other" : ""));
    });
    await tick();
    backend.commits[0]!.settle(new StaleWrite(1));
    await tick();
    backend.deliver({ version: 1, writes: [{ op: "put", kind: "node", object: node("other") }] });
    await vi.waitFor(() => expect(backend.commits).toHaveLength(2)); // after the winner's commit, and a short random pause
    expect(backend.commits[1]!.version).toBe(2);
    backend.commits[1]!.settle();
    const mine = await put;
    expect(runs).toBe(2);
    expect(mine.status.ingressAddr).toBe("after-other");
    expect(seen.map((c) => [c.version, c.foreign ?? false])).toEqual([
      [1, true],
      [2, false],
    ]);
  });

  it("holds another manager's commit that comes ahead of its own in flight until that one is applied", async () => {
    const backend = new HeldBackend();
    const store = await ClusterStore.open(backend);
    const put = store.update((tx) => tx.put("node", node("a")));
    await tick();
    backend.deliver({ version: 2, writes: [{ op: "delete", kind: "node", id: "a" }] });
    expect(store.node("a")).toBeUndefined();
    expect(store.version).toBe(0);
    backend.commits[0]!.settle();
    await put;
    expect(store.version).toBe(2);
    expect(store.node("a")).toBeUndefined();
  });

  it("answers UNAVAILABLE with the backend's reason and keeps nothing of the change", async () => {
    const backend = new HeldBackend();
    const store = await ClusterStore.open(backend);
    let undone = false;
    const put = store.update((tx) => {
      tx.onRollback(() => (undone = true));
      return tx.put("node", node("a"));
    });
    await tick();
    backend.commits[0]!.settle(new StoreUnavailable("etcd has no quorum"));
    await expect(put).rejects.toMatchObject({ code: "unavailable", message: "etcd has no quorum" });
    expect(undone).toBe(true);
    expect(store.node("a")).toBeUndefined();
    expect(store.version).toBe(0);
  });

  it("rebuilds allocations before the next change once another manager's commit moved them, not for a status", async () => {
    const backend = new HeldBackend();
    const store = await ClusterStore.open(backend);
    let rebuilds = 0;
    store.onReallocate(() => rebuilds++);
    backend.deliver({ version: 1, writes: [{ op: "put", kind: "node", object: node("a") }] });
    await store.update(() => {});
    expect(rebuilds).toBe(0); // no ingress address: nothing allocated
    backend.deliver({ version: 2, writes: [{ op: "put", kind: "node", object: node("a", "10.255.0.9") }] });
    backend.deliver({ version: 3, writes: [{ op: "setting", name: "x", value: "1" }] });
    expect(store.settings.get("x")).toBe("1");
    await store.update(() => {});
    expect(rebuilds).toBe(1);
  });

  it("reloads when its watch is lost, again until a load works, saying meanwhile that it is behind", async () => {
    const backend = new HeldBackend();
    const store = await ClusterStore.open(backend);
    const seen: Commit[] = [];
    store.subscribe((c) => seen.push(c));
    backend.nextLoads = [new Error("etcd has no quorum"), { version: 7, nodes: [node("b")] }];
    backend.onError!(new Error("the watch was compacted"));
    expect(store.behind()).toContain("the watch was compacted");
    await vi.waitFor(() => expect(store.version).toBe(7), { timeout: 3000 });
    expect(store.behind()).toBeUndefined();
    expect(store.node("b")).toBeDefined();
    expect(seen.map((c) => c.changes.map((ch) => `${ch.action} ${ch.object.id}`))).toEqual([["create b"]]);
    await store.close();
  });

  it("makes a setting once: a second init finds the first one's value", async () => {
    const store = await ClusterStore.openSqlite(null);
    expect(await store.settings.init("cluster-id", () => "first")).toBe("first");
    expect(await store.settings.init("cluster-id", () => "second")).toBe("first");
  });

  it("writes settings in the commit, and reads them back from memory", async () => {
    const backend = new HeldBackend();
    const store = await ClusterStore.open(backend);
    const set = store.settings.set("join-secret-worker", "s3cret");
    await tick();
    expect(backend.commits[0]!.writes).toEqual([{ op: "setting", name: "join-secret-worker", value: "s3cret" }]);
    expect(store.settings.get("join-secret-worker")).toBeUndefined();
    backend.commits[0]!.settle();
    await set;
    expect(store.settings.get("join-secret-worker")).toBe("s3cret");
  });

  it("finds by ID, name or unique prefix, a transaction seeing its own renames, removals and creations", async () => {
    const store = await ClusterStore.openSqlite(null);
    await store.update((tx) => {
      tx.put("node", node("id-a", "", "host-1"));
      tx.put("node", node("id-b", "", "host-2"));
    });
    await store.update((tx) => {
      expect(tx.find("node", "host-1")?.id).toBe("id-a");
      tx.put("node", node("id-a", "", "host-9"));
      expect(tx.find("node", "host-1")).toBeUndefined();
      expect(tx.find("node", "host-9")?.id).toBe("id-a");
      tx.remove("node", "id-b");
      expect(tx.find("node", "host-2")).toBeUndefined();
      tx.put("node", node("id-c", "", "host-2"));
      expect(tx.find("node", "host-2")?.id).toBe("id-c");
      expect(() => tx.find("node", "id-")).toThrow("ambiguous");
    });
    expect(store.mustFind("node", "host-9").id).toBe("id-a");
    expect(store.mustFind("node", "host-2").id).toBe("id-c");
    expect(store.mustFind("node", "id-c").description.hostname).toBe("host-2");
    expect(() => store.mustFind("node", "host-1")).toThrow("not found");
  });
});
