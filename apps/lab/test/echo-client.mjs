// One TCP connection to ADDR:PORT of an echo server, a line every 100 ms;
// prints "ok N" as each comes back, and "CLOSED" (exit 1) if the connection breaks.
import { connect } from "node:net";

const [addr, port] = process.argv.slice(2);
const socket = connect(Number(port), addr);
let ok = 0;
let pending = "";
socket.on("data", (d) => {
  pending += String(d);
  const lines = pending.split("\n");
  pending = lines.pop();
  ok += lines.filter((l) => l === "ping").length;
  console.log(`ok ${ok}`);
});
socket.on("close", () => {
  console.log("CLOSED");
  process.exit(1);
});
socket.on("error", (e) => console.log(`ERROR ${e.message}`));
setInterval(() => socket.write("ping\n"), 100);
