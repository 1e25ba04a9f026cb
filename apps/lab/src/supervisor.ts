// The lab's agent supervisor: what systemd's Restart=always is on a real host
// (deploy/systemd/vipmesh-agent.service), for one lab node.
//
//   node --import tsx/loader supervisor.ts --pid-file FILE -- COMMAND ARGS...
//
// Runs COMMAND (the node's agent) as a process group of its own and writes
// its pid to FILE; when it ends on its own (a crash, a SIGKILL, any exit) it
// is started again after a backoff (200 ms doubling to 5 s, back to 200 ms
// once it ran 10 s). SIGTERM or SIGINT to the supervisor kills the agent
// (SIGKILL, as `lab node stop` always did: tasks keep running, like after a
// crash) and ends the supervisor without a restart. Restarts and stops are
// logged to stdout, which the lab points at the node's agent log.
// Node rather than a shell loop: exits, signals and timers arrive one at a time
// as events, so a stop can never race a restart. Nothing secret passes
// through here: the agent reads its join token from its 0600 file itself.

import { spawn, type ChildProcess } from "node:child_process";
import { rmSync } from "node:fs";
import { signalGroup, writePidFile } from "./pid-file.ts";

const FIRST_DELAY_MS = 200;
const MAX_DELAY_MS = 5000;
/** An agent that ran this long was healthy: its next restart waits FIRST_DELAY_MS again. */
const STEADY_MS = 10_000;

const args = process.argv.slice(2);
const sep = args.indexOf("--");
if (args[0] !== "--pid-file" || !args[1] || sep !== 2 || args.length < 4) {
  process.stderr.write("usage: supervisor.ts --pid-file FILE -- COMMAND [ARGS...]\n");
  process.exit(2);
}
const pidFile = args[1];
const [command, ...commandArgs] = args.slice(3) as [string, ...string[]];

const log = (line: string) => process.stdout.write(`${new Date().toISOString()} supervisor: ${line}\n`);

let child: ChildProcess | undefined;
let restart: NodeJS.Timeout | undefined;
let stopping = false;
let delay = FIRST_DELAY_MS;

function start(): void {
  restart = undefined;
  const started = Date.now();
  // its own process group: `kill -- -PID` (the lab's killAgent) takes the agent and its
  // check processes, not this supervisor; tasks are in groups of their own and live on
  const c = spawn(command, commandArgs, { detached: true, stdio: ["ignore", "inherit", "inherit"] });
  child = c;
  let ended = false;
  const onEnd = (why: string) => {
    if (ended) return;
    ended = true;
    child = undefined;
    rmSync(pidFile, { force: true });
    if (stopping) {
      log(`agent (pid ${c.pid}) ${why}; stopped, not restarting it`);
      process.exit(0);
    }
    if (Date.now() - started >= STEADY_MS) delay = FIRST_DELAY_MS;
    log(`agent (pid ${c.pid ?? "none"}) ${why} after ${((Date.now() - started) / 1000).toFixed(1)} s; restarting it in ${delay} ms`);
    restart = setTimeout(start, delay);
    delay = Math.min(delay * 2, MAX_DELAY_MS);
  };
  c.once("error", (err) => onEnd(`could not run: ${err.message}`));
  c.once("exit", (code, signal) => onEnd(signal ? `killed by ${signal}` : `exited with code ${code}`));
  if (c.pid !== undefined) {
    writePidFile(pidFile, c.pid);
    log(`agent started (pid ${c.pid})`);
  }
}

function stop(signal: NodeJS.Signals): void {
  if (stopping) return;
  stopping = true;
  log(`${signal}: stopping`);
  if (restart) clearTimeout(restart);
  // the exit handler above ends this process once the agent is gone
  if (child?.pid !== undefined) signalGroup(child.pid, "SIGKILL");
  else process.exit(0);
}

process.on("SIGTERM", () => stop("SIGTERM"));
process.on("SIGINT", () => stop("SIGINT"));
start();
