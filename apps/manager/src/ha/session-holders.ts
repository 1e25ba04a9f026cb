// Where a node's agent session is, with several managers: here, at another
// manager (then asked through its cluster API, with this manager's
// certificate), or nowhere. What peer-logs.ts and peer-images.ts share.

import { clusterClient, type ClientCredentials, type ClusterServiceClient } from "@vipmesh/api";
import type { ManagerInfo } from "./directory.ts";

export class SessionHolders {
  constructor(
    /** Whether this manager holds the node's session. */
    readonly holdsHere: (nodeId: string) => boolean,
    /** The manager that holds the node's session, if another one does. */
    private readonly holderOf: (nodeId: string) => Promise<ManagerInfo | undefined>,
    /** This manager's identity, as a client of the others. */
    private readonly credentials: ClientCredentials,
  ) {}

  /**
   * The other manager to ask for the node; undefined when none holds its
   * session (then this manager's relay answers: here, or "not connected").
   * Rejects, saying why, when etcd cannot tell.
   */
  async elsewhere(nodeId: string): Promise<ManagerInfo | undefined> {
    if (this.holdsHere(nodeId)) return undefined;
    try {
      const holder = await this.holderOf(nodeId);
      return holder?.addr ? holder : undefined;
    } catch (err) {
      throw new Error(`cannot find which manager holds its session: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  /** A client of the holder, as this manager; close it when done. */
  client(holder: ManagerInfo): ClusterServiceClient {
    return clusterClient(holder.addr, this.credentials);
  }

  /** Why a call to the holder failed, for people. */
  failed(holder: ManagerInfo, err: { details?: string; message: string }): string {
    return `manager ${holder.hostname}, which holds the node's session, answered: ${err.details || err.message}`;
  }
}
