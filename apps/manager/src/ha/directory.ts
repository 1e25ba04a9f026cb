// Which managers the cluster has, for node ls, the Engine API's /nodes and
// /info, and the agents' and clients' lists of where to fail over to.

import { precondition } from "@vipmesh/core";

export interface ManagerInfo {
  /** Stable across restarts. */
  id: string;
  hostname: string;
  /** host:port agents and clients dial; "" when it listens only on a socket. */
  addr: string;
  /** Its Docker Engine API addresses, as DOCKER_HOST takes them. */
  dockerApi: string[];
  createdAt: string;
  /** It is running and holds its lease (always, for this manager itself while it runs). */
  reachable: boolean;
  /** It runs the orchestrator, the scheduler, node timeouts and key rotation. */
  leader: boolean;
}

export interface ManagerDirectory {
  /** This manager. */
  self(): ManagerInfo;
  /** Every manager of the cluster, this one included, by hostname. */
  list(): ManagerInfo[];
  /** Called after the list or a manager's reachability or leadership changed. */
  onChange(fn: () => void): () => void;
  /** Forgets a manager (`vipmesh node rm`): FAILED_PRECONDITION while it runs, unless forced. */
  remove(id: string, force: boolean): Promise<void>;
}

/** The directory of a cluster with one manager (the SQLite store): itself, reachable, the leader. */
export function soloDirectory(self: () => Omit<ManagerInfo, "reachable" | "leader">): ManagerDirectory {
  const me = (): ManagerInfo => ({ ...self(), reachable: true, leader: true });
  const remove = () => Promise.reject(precondition("this is the cluster's only manager (SQLite store): it cannot be removed"));
  return { self: me, list: () => [me()], onChange: () => () => {}, remove };
}
