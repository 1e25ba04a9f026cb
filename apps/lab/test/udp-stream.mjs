// A steady UDP client: one socket (so one conntrack flow), a datagram to
// ADDR:PORT every 50 ms until SIGTERM; prints the task ID of each answer
// (whoami answers "task <id>"), one a line.
import { createSocket } from "node:dgram";

const [addr, port] = process.argv.slice(2);
const socket = createSocket("udp4");
socket.on("message", (m) => console.log(String(m).trim().replace(/^task /, "")));
const timer = setInterval(() => socket.send("who", Number(port), addr), 50);
process.on("SIGTERM", () => {
  clearInterval(timer);
  socket.close();
});
