// What a store backend is: where the cluster's objects and settings persist.
// Two exist: SQLite (sqlite.ts, one manager, the default) and etcd (etcd.ts,
// any number of managers). ClusterStore keeps everything in memory and calls
// the backend to load at start, to commit each change, and (etcd) to hear the
// changes other managers commit.

import type { ObjectByKind, ObjectKind } from "@vipmesh/core";

export const KINDS: readonly ObjectKind[] = ["node", "network", "service", "task"];

/** One write of a commit: an object put or deleted, or a named setting set. */
export type Write =
  | { op: "put"; kind: ObjectKind; object: ObjectByKind[ObjectKind] }
  | { op: "delete"; kind: ObjectKind; id: string }
  | { op: "setting"; name: string; value: string };

export interface PersistedState {
  version: number;
  objects: { [K in ObjectKind]: ObjectByKind[K][] };
  /**
   * Small named values beside the objects: join token secrets, removed nodes,
   * overlay keys, the manager's IDs, and with etcd the cluster CA. A backend
   * that stores them outside this process encrypts them (etcd.ts).
   */
  settings: Record<string, string>;
}

/** Someone else committed `version` first: reload to at least it and run the change again. */
export class StaleWrite extends Error {
  constructor(readonly seen: number) {
    super(`the cluster moved on to version ${seen} while this change was made`);
  }
}

/** The store cannot be written now (etcd has no quorum, the database is gone); `reason` says why, for a person. */
export class StoreUnavailable extends Error {}

/** A commit another manager made, as the watch delivers it: whole, in version order. */
export interface ForeignCommit {
  version: number;
  writes: Write[];
}

export interface StoreBackend {
  /** Everything the store holds, and its version. */
  load(): Promise<PersistedState>;
  /**
   * Writes all of `writes` and sets the version to `version`, all or nothing,
   * only if the stored version is still `version - 1`: otherwise StaleWrite.
   * StoreUnavailable when it cannot be written now; never hangs past a few seconds.
   * A backend that commits synchronously returns nothing (SQLite): the change
   * and what it sets off then stay in one turn of the event loop.
   */
  commit(version: number, writes: readonly Write[]): Promise<void> | void;
  /**
   * Other managers' commits, each once, in version order, starting after
   * `fromVersion` (what load() returned); `onError` when the watch is lost for
   * good (the store must reload). SQLite has none: one manager writes it.
   */
  watch?(fromVersion: number, onCommit: (c: ForeignCommit) => void, onError: (err: Error) => void): () => void;
  close(): Promise<void>;
}
