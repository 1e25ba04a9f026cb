// The embedded DNS's UDP path (replay.c, built into build/dns-replay.node by
// `npm ci`): its functions, typed. See replay.c for what it does and why.

import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

/** A server: one thread answering every added UDP socket. */
export type ReplayServer = { readonly __brand: "ReplayServer" };

export interface ReplayStats {
  /** Queries answered by a replay. */
  hits: number;
  /** Queries handed to JavaScript. */
  misses: number;
  /** Queries or replies lost: out of memory, closing, a socket buffer full, or a reply that could not be sent. */
  dropped: number;
  /** Replies kept for the slot asked about, and the bytes they are counted as. */
  kept?: number;
  keptBytes?: number;
}

interface ReplayAddon {
  /** A UDP socket and a listening TCP socket bound to address:port inside the network namespace at `namespacePath`. */
  openSockets(namespacePath: string, address: string, port: number): [udpFd: number, tcpFd: number];
  /** `onMiss` gets each query that has no reply to replay, with the asker's address; past `bytesPerSlot` of kept replies, a slot starts afresh. */
  createServer(onMiss: (slot: number, query: Buffer, address: string, port: number) => void, bytesPerSlot: number): ReplayServer;
  /** Serves a UDP socket (the server closes it on remove()); returns its slot. */
  add(server: ReplayServer, udpFd: number): number;
  remove(server: ReplayServer, slot: number): void;
  /** Drops every reply kept for the slot. */
  forget(server: ReplayServer, slot: number): void;
  /** Sends `reply`; with `query`, keeps it to replay to the same query bytes, shuffling the addresses at `shuffleAt`. */
  send(server: ReplayServer, slot: number, address: string, port: number, reply: Buffer, query?: Buffer | null, shuffleAt?: Uint16Array | null): boolean;
  stats(server: ReplayServer, slot?: number): ReplayStats;
  /** Stops the thread and closes every socket it served. */
  close(server: ReplayServer): void;
}

const ADDON = fileURLToPath(new URL("../../build/dns-replay.node", import.meta.url));
let addon: ReplayAddon | undefined;

export function replayAddon(): ReplayAddon {
  if (!addon) {
    try {
      addon = createRequire(import.meta.url)(ADDON) as ReplayAddon;
    } catch (e) {
      throw new Error(
        `the embedded DNS's UDP path is not built (${e instanceof Error ? e.message : String(e)}): npm ci builds it, or run node apps/agent/scripts/build-native.mjs`,
      );
    }
  }
  return addon;
}
