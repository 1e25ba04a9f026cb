// Putting a rendered config in front of HAProxy safely: written to a
// temporary file beside the live one, validated with `haproxy -c`, and only
// then renamed over it (atomic: HAProxy never reads half a file) and taken
// into use — over the runtime API when only servers changed (address, port,
// enabled), else by a reload: the master socket's `reload` (master-worker
// mode: the new worker takes over the listening sockets, so no connection is
// refused) or a command of the user's. A config that fails validation never
// replaces the live one.

import { execFile } from "node:child_process";
import { renameSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import type { Backend, TemplateData } from "./model.ts";

export class ConfigError extends Error {
  override name = "ConfigError";
}

/** One command to an HAProxy CLI socket (runtime API or master CLI); its answer. */
export function socketCommand(path: string, command: string, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(path, () => s.end(`${command}\n`));
    let out = "";
    const timer = setTimeout(() => s.destroy(new Error(`${path}: no answer to "${command}" within ${timeoutMs} ms`)), timeoutMs);
    s.on("data", (d) => (out += d));
    s.on("error", (e) => {
      clearTimeout(timer);
      reject(new Error(`${path}: ${e.message}`));
    });
    s.on("close", () => {
      clearTimeout(timer);
      resolve(out);
    });
  });
}

function run(cmd: string, args: string[], timeoutMs = 30_000): Promise<{ code: number; output: string }> {
  return new Promise((resolve) =>
    execFile(cmd, args, { timeout: timeoutMs }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, output: `${stdout}${stderr}`.trim() }),
    ),
  );
}

/** `haproxy -c`: throws a ConfigError with HAProxy's own words when the file is not a valid config. */
export async function validateConfig(path: string, haproxy = "haproxy"): Promise<void> {
  const r = await run(haproxy, ["-c", "-f", path]);
  if (r.code === 0) return;
  // its [ALERT] lines say what is wrong, and where
  const alerts = r.output.split("\n").filter((l) => l.includes("[ALERT]")).map((l) => l.replace(/^\[ALERT\]\s+\(\d+\) : (config : )?/, ""));
  throw new ConfigError(`haproxy -c refused the rendered config: ${alerts.join("; ") || r.output || `exit status ${r.code}`}`);
}

export interface ApplyOptions {
  /** The live config file. */
  output: string;
  /** The master CLI socket (haproxy -W -S PATH): reloads through it. */
  masterSocket?: string;
  /** A shell command that reloads HAProxy, when there is no master socket. */
  reloadCommand?: string;
  haproxy?: string;
}

export type Applied = "unchanged" | "runtime" | "reload" | "written";

/**
 * The config apart from what the runtime API can change (a server slot's
 * address, port, weight and state) and what is only said in comments
 * (version, warnings). A custom template that renders node data elsewhere
 * than in server lines should render it from `backends`, or be reloaded by hand.
 */
const shape = (d: TemplateData) =>
  JSON.stringify({ ...d, version: 0, nodes: [], warnings: [], backends: d.backends.map((b) => ({ ...b, servers: b.servers.length })) });

/** The runtime API commands that turn `prev`'s servers into `next`'s (same shape). */
export function runtimeCommands(prev: TemplateData, next: TemplateData): string[] {
  const before = new Map<string, Backend>(prev.backends.map((b) => [b.name, b]));
  const out: string[] = [];
  for (const b of next.backends) {
    const old = before.get(b.name)!;
    b.servers.forEach((s, i) => {
      const o = old.servers[i]!;
      const id = `${b.name}/${s.name}`;
      const moved = s.addr !== o.addr || s.port !== o.port;
      if (s.enabled && moved) out.push(`set server ${id} addr ${s.addr} port ${s.port}`);
      // a slot taken anew gets its weight whatever it was: HAProxy keeps the last one set, not the config's
      if (s.enabled && (s.weight !== o.weight || !o.enabled || moved)) out.push(`set weight ${id} ${s.weight}`);
      if (s.enabled && (!o.enabled || moved)) out.push(`set server ${id} state ready`);
      if (!s.enabled && o.enabled) out.push(`set server ${id} state maint`);
    });
  }
  return out;
}

/** Keeps the live config equal to the last good render; see the file's header. */
export class ConfigApplier {
  private live: { text: string; data: TemplateData } | undefined;

  constructor(private readonly o: ApplyOptions) {}

  async apply(text: string, data: TemplateData): Promise<Applied> {
    if (this.live?.text === text) return "unchanged";
    const tmp = `${this.o.output}.tmp-${process.pid}`;
    writeFileSync(tmp, text);
    try {
      await validateConfig(tmp, this.o.haproxy);
    } catch (e) {
      rmSync(tmp, { force: true });
      throw e;
    }
    const prev = this.live;
    renameSync(tmp, this.o.output);
    // live only once HAProxy took it: after a failed reload the next render reloads again
    this.live = undefined;
    let applied: Applied = "written";
    if (this.o.masterSocket || this.o.reloadCommand) {
      const runtime = prev && shape(prev.data) === shape(data) && (await this.runtime(runtimeCommands(prev.data, data), data));
      if (!runtime) await this.reload(data);
      applied = runtime ? "runtime" : "reload";
    }
    this.live = { text, data };
    return applied;
  }

  /** Sends the commands to the runtime API at once; false when any failed (the caller reloads instead). */
  private async runtime(commands: string[], data: TemplateData): Promise<boolean> {
    if (commands.length === 0) return true;
    try {
      // one connection: commands separated by ";" run in order, each answer on its own lines
      const answer = await socketCommand(data.runtime.statsSocket, commands.join(";"));
      return !answer.split("\n").some((l) => /^(No such|Require|Invalid|Unknown|.*not found|.*failed)/i.test(l.trim()));
    } catch {
      return false;
    }
  }

  private async reload(data: TemplateData): Promise<void> {
    if (this.o.masterSocket) {
      const before = await workerPid(data.runtime.statsSocket);
      await socketCommand(this.o.masterSocket, "reload");
      // the new worker answers the runtime API once it runs the new config
      const deadline = Date.now() + 10_000;
      for (;;) {
        const pid = await workerPid(data.runtime.statsSocket);
        if (pid !== undefined && pid !== before) return;
        if (Date.now() > deadline) throw new ConfigError(`HAProxy did not take the new config within 10 s (master socket ${this.o.masterSocket})`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    const r = await run("sh", ["-c", this.o.reloadCommand!]);
    if (r.code !== 0) throw new ConfigError(`reload command failed (exit status ${r.code}): ${r.output}`);
  }
}

async function workerPid(statsSocket: string): Promise<number | undefined> {
  try {
    const m = /^Pid: (\d+)$/m.exec(await socketCommand(statsSocket, "show info", 2000));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}
