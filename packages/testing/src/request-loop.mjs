// A steady request loop: one HTTP GET at a time to ADDR:PORT, each on a new
// connection (so each is balanced anew), until SIGTERM or COUNT requests; then
// prints one JSON line {ok, failed, errors, tasks} (tasks: answers per task ID)
// and exits. A request fails when it cannot connect, gets no complete answer
// within TIMEOUT_MS, or is not a 200.
//
//   node request-loop.mjs ADDR PORT [TIMEOUT_MS] [COUNT]
import { request } from "node:http";

const [addr, port, timeoutMs = "2000", count = "Infinity"] = process.argv.slice(2);
let ok = 0;
const errors = [];
const tasks = {};
let stopping = false;

function once() {
  return new Promise((resolve) => {
    const started = Date.now();
    const fail = (why) => {
      errors.push(`${new Date().toISOString()} ${why} after ${Date.now() - started} ms`);
      resolve();
    };
    const req = request({ host: addr, port: Number(port), path: "/", agent: false, timeout: Number(timeoutMs) }, (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => {
        if (res.statusCode !== 200) return fail(`status ${res.statusCode}`);
        const task = /Task: (\S+)/.exec(body)?.[1] ?? "?";
        tasks[task] = (tasks[task] ?? 0) + 1;
        ok++;
        resolve();
      });
      res.on("error", (e) => fail(e.message));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", (e) => fail(e.message));
    req.end();
  });
}

process.on("SIGTERM", () => (stopping = true));
console.log("started");
while (!stopping && ok + errors.length < Number(count)) await once();
console.log(JSON.stringify({ ok, failed: errors.length, errors, tasks }));
