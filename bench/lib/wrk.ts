// wrk, the HTTP load generator the connection-rate benchmarks use: every
// request on a new TCP connection (`Connection: close`), so requests/s are
// new connections/s. Installed with apt-get when missing.

import { execFileSync, spawnSync } from "node:child_process";
import { cpus } from "node:os";

export interface WrkRun {
  /** Requests (= new connections) per second. */
  rate: number;
  p50Ms: number;
  p99Ms: number;
  /** Socket errors and non-2xx answers. */
  errors: number;
}

/** More than one CPU: the server is pinned to CPU 0 and wrk to CPU 1, so that the server's core is what limits. */
export const PINNED = cpus().length >= 2;

/** wrk's "Latency Distribution" value ("1.23ms", "456.00us", "1.02s") in ms. */
const ms = (text: string): number => {
  const m = /^([\d.]+)(us|ms|s)$/.exec(text)!;
  return Number(m[1]) * (m[2] === "us" ? 0.001 : m[2] === "s" ? 1000 : 1);
};

export function ensureWrk(): void {
  if (spawnSync("wrk", ["--version"]).error === undefined) return;
  process.stderr.write("installing wrk…\n");
  execFileSync("apt-get", ["install", "-y", "--no-install-recommends", "wrk"], { stdio: "inherit", env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
}

/** One wrk run from inside `netns` (one thread, on CPU 1 when pinned). */
export function wrk(netns: string, url: string, o: { seconds: number; connections: number }): WrkRun {
  const cmd = [...(PINNED ? ["taskset", "-c", "1"] : []), "wrk", "-t1", `-c${o.connections}`, `-d${o.seconds}s`, "--latency", "-H", "Connection: close", url];
  const out = execFileSync("ip", ["netns", "exec", netns, ...cmd], { encoding: "utf8", timeout: (o.seconds + 30) * 1000 });
  const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  return {
    rate: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)![1]),
    p50Ms: ms(/^\s+50%\s+(\S+)/m.exec(out)![1]!),
    p99Ms: ms(/^\s+99%\s+(\S+)/m.exec(out)![1]!),
    errors: (errors ? errors.slice(1).reduce((a, b) => a + Number(b), 0) : 0) + (non2xx ? Number(non2xx[1]) : 0),
  };
}

export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;

/** The median run of each figure over rounds, and the errors summed. */
export const medianRun = (rs: WrkRun[]): WrkRun => ({
  rate: median(rs.map((x) => x.rate)),
  p50Ms: median(rs.map((x) => x.p50Ms)),
  p99Ms: median(rs.map((x) => x.p99Ms)),
  errors: rs.reduce((a, x) => a + x.errors, 0),
});
