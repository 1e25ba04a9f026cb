// Tries to connect to ADDR:PORT every 5 ms; prints the wall-clock time (ms) of
// the first success and exits. Runs inside a task sandbox, for lab-scale.ts.
import { connect } from "node:net";

const [addr, port, timeoutMs = "30000"] = process.argv.slice(2);
const deadline = Date.now() + Number(timeoutMs);
const attempt = () => {
  const s = connect({ host: addr, port: Number(port), timeout: 200 });
  s.once("connect", () => {
    console.log(Date.now());
    s.destroy();
    process.exit(0);
  });
  const retry = () => {
    s.destroy();
    if (Date.now() > deadline) process.exit(1);
    setTimeout(attempt, 5);
  };
  s.once("error", retry);
  s.once("timeout", retry);
};
attempt();
