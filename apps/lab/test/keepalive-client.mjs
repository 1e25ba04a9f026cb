// One keep-alive HTTP connection to ADDR:PORT, a request every 100 ms; prints
// "task ID" (whoami's answer: which task serves the connection) and "ok N"
// after each response, and "CLOSED" (exit 1) if the connection breaks.
import { connect } from "node:net";

const [addr, port] = process.argv.slice(2);
const socket = connect(Number(port), addr);
let ok = 0;
socket.on("data", (d) => {
  ok += (String(d).match(/HTTP\/1\.1 200/g) ?? []).length;
  for (const [, task] of String(d).matchAll(/Task: (\S+)/g)) console.log(`task ${task}`);
  console.log(`ok ${ok}`);
});
socket.on("close", () => {
  console.log("CLOSED");
  process.exit(1);
});
socket.on("error", (e) => console.log(`ERROR ${e.message}`));
setInterval(() => socket.write("GET / HTTP/1.1\r\nHost: b\r\n\r\n"), 100);
