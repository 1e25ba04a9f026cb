import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseTaskLogLine } from "@vipmesh/api";
import { waitFor } from "./wait.ts";
export * from "./docker-cli.ts";
export * from "./ports.ts";
export * from "./sim-agent.ts";
export * from "./wait.ts";

/**
 * A steady HTTP request loop to run where the client is (`node REQUEST_LOOP ADDR PORT
 * [TIMEOUT_MS] [COUNT]`, e.g. under `ip netns exec`): one GET at a time, each on a new
 * connection; on SIGTERM it prints {ok, failed, errors, tasks} as one JSON line.
 */
export const REQUEST_LOOP = fileURLToPath(new URL("./request-loop.mjs", import.meta.url));

/** What a REQUEST_LOOP says when stopped. */
export interface RequestLoopResult {
  ok: number;
  failed: number;
  errors: string[];
}

/** Starts a REQUEST_LOOP in a network namespace (2 s per request), once it runs; `stop` ends it and says how it went. */
export async function requestLoop(netns: string, addr: string, port: number): Promise<{ stop: () => Promise<RequestLoopResult> }> {
  const p = spawn("ip", ["netns", "exec", netns, "node", REQUEST_LOOP, addr, String(port), "2000"], { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  p.stdout.on("data", (d: Buffer) => (out += d));
  const ended = new Promise<void>((resolve) => p.on("close", () => resolve()));
  await waitFor("the loop to start", () => out.includes("started"), 30_000);
  return {
    async stop() {
      p.kill("SIGTERM");
      await ended;
      return JSON.parse(out.trim().split("\n").pop()!) as RequestLoopResult;
    },
  };
}

/**
 * A task flooding its sandbox's DNS, as a service's command (`node DNS_FLOOD tcp [MAX]` holds
 * as many TCP connections as it can, trickling; `node DNS_FLOOD udp` floods queries); it prints
 * a JSON line of counts every 2 s.
 */
export const DNS_FLOOD = fileURLToPath(new URL("./dns-flood.mjs", import.meta.url));

/** A DNS_FLOOD task's last counts, from its log (`<state dir>/tasks/<id>/log`); undefined before its first line. */
export function floodCounts(logFile: string): Record<string, number> | undefined {
  const last = existsSync(logFile) ? readFileSync(logFile, "utf8").trim().split("\n").at(-1) : undefined;
  const text = last === undefined ? undefined : parseTaskLogLine(last).text;
  return text?.startsWith("{") ? (JSON.parse(text) as Record<string, number>) : undefined;
}

/**
 * A sandbox's DNS client (`node DNS_PROBE COUNT INTERVAL_MS TIMEOUT_MS NAME[,NAME...]` under
 * `ip netns exec`): a query every INTERVAL_MS over UDP and TCP, then one JSON line, per query
 * {name, proto, ms (null: unanswered), rcode, addrs}.
 */
export const DNS_PROBE = fileURLToPath(new URL("./dns-probe.mjs", import.meta.url));

/** What DNS_PROBE prints for one query. */
export interface DnsProbeResult {
  name: string;
  proto: "udp" | "tcp";
  ms: number | null;
  rcode: string;
  addrs: string[];
}
