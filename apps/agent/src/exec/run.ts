// The one place that runs `ip` and `bridge`. Reads are JSON (`-j`); writes
// are batches (`-batch -` on stdin), one per tool and namespace per sync.
//
// Batches run with `-force`: the tool goes on after a failed line and still
// exits non-zero, printing "Command failed -:N" after each failure's message.
// That is what both drivers want: an add that finds the object there, or a
// delete that finds it gone, is success (the convention that makes a sync
// repeatable), and only `-force` lets the lines after such a line run at all;
// real failures are still all reported, with their line. One catch: a few
// subcommands (iproute2 6.1 `ip neigh add/del/replace` on a netlink error, and
// any argument parse error) exit the tool instead of returning, ending the
// batch there without a "Command failed" line: `aborted` says so, and callers
// order such lines last and re-sync.

import { spawn } from "node:child_process";

export type Tool = "ip" | "bridge";

export interface RunOptions {
  /**
   * Namespace to run in (`-n NS`); undefined means the current one. Not for
   * `ip netns add`: `-n` enters a private mount namespace, so the bind mount
   * that keeps the new namespace would vanish with the command.
   */
  netns?: string;
  /** Written to stdin. */
  input?: string;
  timeoutMs?: number;
}

/** Options common to the kernel drivers. */
export interface KernelOptions {
  /** The node namespace the driver manages; undefined (production) means the current one. */
  netns?: string;
  /** Called before every write: to count, log or trace what the driver does to the kernel. */
  onWrite?: (write: KernelWrite) => void;
}

export interface KernelWrite {
  tool: Tool;
  netns: string | undefined;
  lines: string[];
}

const DEFAULT_TIMEOUT_MS = 30_000;

export class KernelCommandError extends Error {
  override name = "KernelCommandError";
  constructor(
    readonly command: string,
    readonly exitCode: number | null,
    readonly stderr: string,
    detail?: string,
  ) {
    super(`${command}: ${detail ?? (exitCode === null ? "killed" : `exit status ${exitCode}`)}${stderr.trim() ? `: ${stderr.trim()}` : ""}`);
  }
}

const quote = (a: string) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
export const commandLine = (tool: string, argv: string[]) => [tool, ...argv].map(quote).join(" ");

interface Exit {
  code: number | null;
  stdout: string;
  stderr: string;
}

function exec(tool: string, argv: string[], o: RunOptions): Promise<Exit> {
  return new Promise((resolve, reject) => {
    const failed = (e: Error) => reject(new KernelCommandError(commandLine(tool, argv), null, "", `cannot run: ${e.message}`));
    const child = spawn(tool, argv, { stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, LC_ALL: "C" } });
    // first: a spawn that fails (EMFILE when a task made the agent use up its descriptors) says so here, and
    // may have no pipes at all; an 'error' with no listener would end the agent
    child.on("error", (e) => {
      clearTimeout(timer);
      failed(e);
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, o.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    child.stdout?.on("data", (b: Buffer) => out.push(b));
    child.stderr?.on("data", (b: Buffer) => err.push(b));
    child.on("close", (code) => {
      clearTimeout(timer);
      const stderr = Buffer.concat(err).toString();
      if (timedOut) return reject(new KernelCommandError(commandLine(tool, argv), null, stderr, `no answer within ${o.timeoutMs ?? DEFAULT_TIMEOUT_MS} ms`));
      resolve({ code, stdout: Buffer.concat(out).toString(), stderr });
    });
    child.stdin?.on("error", () => {}); // a tool that exits early closes its stdin; its exit status tells why
    child.stdin?.end(o.input ?? "");
  });
}

const withNetns = (args: string[], netns: string | undefined) => (netns === undefined ? args : ["-n", netns, ...args]);

/** Runs one command; its stdout, or a KernelCommandError with the command, exit status and stderr. */
export async function run(tool: Tool, args: string[], o: RunOptions = {}): Promise<string> {
  const argv = withNetns(args, o.netns);
  const r = await exec(tool, argv, o);
  if (r.code !== 0) throw new KernelCommandError(commandLine(tool, argv), r.code, r.stderr);
  return r.stdout;
}

/**
 * Runs a command that has no namespace option of its own (`nft`, `sysctl`,
 * `conntrack`, `ss`) in `netns` through `ip netns exec`, or in the current
 * namespace for undefined; its stdout, or a KernelCommandError.
 */
export async function runIn(netns: string | undefined, command: string[], o: Omit<RunOptions, "netns"> = {}): Promise<string> {
  const [tool, ...args] = netns === undefined ? command : ["ip", "netns", "exec", netns, ...command];
  const r = await exec(tool!, args, o);
  if (r.code !== 0) throw new KernelCommandError(commandLine(tool!, args), r.code, r.stderr);
  return r.stdout;
}

/** `tool -j args…`, parsed; an empty answer (some dumps print nothing when there is nothing) is []. */
export async function readJson<T>(tool: Tool, args: string[], o: RunOptions = {}): Promise<T> {
  const text = (await run(tool, ["-j", ...args], o)).trim();
  if (text === "") return [] as T;
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new KernelCommandError(commandLine(tool, withNetns(["-j", ...args], o.netns)), 0, "", `unreadable JSON: ${(e as Error).message}`);
  }
}

/** What a failed line may mean without being a failure. */
export type Tolerated = "exists" | "missing" | "no-ipv6";

export interface BatchLine {
  text: string;
  /** "exists" for adds, "missing" for deletes: the state the line wanted is there; "no-ipv6" for IPv6 settings on a kernel without IPv6. */
  tolerate?: Tolerated;
}

export interface BatchFailure {
  /** 1-based, as the tool counts. */
  lineNo: number;
  text: string;
  message: string;
}

export interface BatchOutcome {
  command: string;
  lines: number;
  /** Lines that failed for a reason they do not tolerate. */
  failures: BatchFailure[];
  /** Lines that failed in the way they tolerate. */
  tolerated: BatchFailure[];
  /** Set when the tool stopped before the end of the batch (see above): its last words. */
  aborted: string | undefined;
}

const TOLERATED: Record<Tolerated, RegExp> = {
  exists: /File exists/,
  missing: /No such file or directory|Cannot find device|No such device|does not exist/,
  "no-ipv6": /Address family not supported/,
};

export const isTolerated = (kind: Tolerated, message: string): boolean => TOLERATED[kind].test(message);

/** Splits a `-force -batch` stderr into each failed line's message and what was said after the last one. */
export function parseBatchStderr(stderr: string): { failed: Map<number, string>; trailing: string } {
  const failed = new Map<number, string>();
  let pending: string[] = [];
  for (const line of stderr.split("\n")) {
    const m = /^Command failed .*:(\d+)$/.exec(line);
    if (m) {
      failed.set(Number(m[1]), pending.join("\n").trim());
      pending = [];
    } else if (line.trim() !== "") {
      pending.push(line);
    }
  }
  return { failed, trailing: pending.join("\n").trim() };
}

/** Runs the lines as one `-force -batch`, and sorts what failed into failures and tolerated ones. */
export async function runBatch(tool: Tool, lines: BatchLine[], o: { netns?: string; timeoutMs?: number } = {}): Promise<BatchOutcome> {
  const argv = withNetns(["-force", "-batch", "-"], o.netns);
  const command = commandLine(tool, argv);
  const outcome: BatchOutcome = { command, lines: lines.length, failures: [], tolerated: [], aborted: undefined };
  if (lines.length === 0) return outcome;
  for (const l of lines) if (/[\n\r]/.test(l.text)) throw new Error(`${command}: a batch line must be one line: ${JSON.stringify(l.text)}`);
  const r = await exec(tool, argv, { input: `${lines.map((l) => l.text).join("\n")}\n`, timeoutMs: o.timeoutMs });
  if (r.code === 0) return outcome;
  const { failed, trailing } = parseBatchStderr(r.stderr);
  for (const [lineNo, message] of failed) {
    const line = lines[lineNo - 1];
    const f = { lineNo, text: line?.text ?? "?", message };
    if (line?.tolerate && TOLERATED[line.tolerate].test(message)) outcome.tolerated.push(f);
    else outcome.failures.push(f);
  }
  if (trailing !== "" || failed.size === 0) outcome.aborted = trailing || `exit status ${r.code}`;
  return outcome;
}

export class KernelBatchError extends Error {
  override name = "KernelBatchError";
  constructor(readonly outcomes: BatchOutcome[]) {
    super(
      outcomes
        .filter((o) => o.failures.length > 0 || o.aborted)
        .map((o) => {
          const parts = o.failures.map((f) => `  line ${f.lineNo} \`${f.text}\`: ${f.message || "failed"}`);
          if (o.aborted) parts.push(`  stopped before the end: ${o.aborted}`);
          return `${o.command}: ${o.failures.length} of ${o.lines} lines failed${o.aborted ? ", and it stopped early" : ""}\n${parts.join("\n")}`;
        })
        .join("\n"),
    );
  }
}

/** Throws a KernelBatchError naming every failed line, unless all went well (tolerated failures are fine). */
export function assertBatches(outcomes: BatchOutcome[]): void {
  if (outcomes.some((o) => o.failures.length > 0 || o.aborted)) throw new KernelBatchError(outcomes);
}

/** A batch of writes in one namespace, announced to `onWrite` first; an empty one is not run. */
export async function writeBatch(tool: Tool, lines: BatchLine[], netns: string | undefined, onWrite?: (w: KernelWrite) => void): Promise<BatchOutcome> {
  if (lines.length > 0) onWrite?.({ tool, netns, lines: lines.map((l) => l.text) });
  return runBatch(tool, lines, { netns });
}

/** One write that cannot be batched (`ip netns add/del`), in the current namespace; a tolerated failure is success. */
export async function writeCommand(tool: Tool, args: string[], tolerate: Tolerated | undefined, onWrite?: (w: KernelWrite) => void): Promise<void> {
  onWrite?.({ tool, netns: undefined, lines: [args.join(" ")] });
  try {
    await run(tool, args);
  } catch (e) {
    if (tolerate && e instanceof KernelCommandError && isTolerated(tolerate, e.stderr)) return;
    throw e;
  }
}
