// The agent's session answering log requests over real gRPC, against a
// stand-in dispatcher on 127.0.0.1:0 that asks for logs as the manager would.
// Needs no root: only files in a temp dir.

import * as grpc from "@grpc/grpc-js";
import { DispatcherServiceDef, type wire } from "@vipmesh/api";
import { tempDir, waitFor } from "@vipmesh/testing";
import { appendFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ManagerSession } from "../src/session/session.ts";
import { serveLogRequest } from "../src/tasks/logs.ts";

type LogData = { requestId: number; taskId: string; data: Buffer; eof: boolean; error: string };

let server: grpc.Server;
let session: ManagerSession;
let dir: ReturnType<typeof tempDir>;
let down: grpc.ServerDuplexStream<unknown, wire.SessionDown> | undefined;
const received: LogData[] = [];

beforeEach(async () => {
  dir = tempDir("vipmesh-session-logs-");
  received.length = 0;
  server = new grpc.Server();
  server.addService(DispatcherServiceDef, {
    Register: (_call: unknown, callback: grpc.sendUnaryData<object>) => callback(null, { nodeId: "n1" }),
    Session: (call: grpc.ServerDuplexStream<any, wire.SessionDown>) => {
      call.on("data", (msg: { open?: object; logData?: LogData }) => {
        if (msg.open) {
          down = call;
          call.write({ params: { nodeId: "n1", heartbeatPeriodMs: 1000 } });
        }
        if (msg.logData) received.push(msg.logData);
      });
      call.on("end", () => call.end());
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  session = new ManagerSession({ managers: [`127.0.0.1:${port}`], credentials: "insecure", hostname: "node1", advertiseAddr: "192.0.2.1", stateDir: dir.path, log: () => {} });
  session.serveLogs((req, send, signal) =>
    serveLogRequest(req, { logFile: (id) => join(dir.path, id, "log"), growing: () => true }, send, signal, { pollMs: 10 }),
  );
  const opened = new Promise((resolve) => session.once("open", () => resolve(undefined)));
  session.start();
  await opened;
});
afterEach(async () => {
  session.stop();
  down = undefined;
  server.forceShutdown();
  dir.remove();
});

const writeLog = (taskId: string, text: string) => {
  mkdirSync(join(dir.path, taskId), { recursive: true });
  appendFileSync(join(dir.path, taskId, "log"), text);
};
const ask = (logRequest: { requestId: number; taskIds: string[]; follow: boolean; tail: number }) => down!.write({ logRequest: { since: "", ...logRequest } });
const textOf = (requestId: number, taskId: string) =>
  Buffer.concat(received.filter((d) => d.requestId === requestId && d.taskId === taskId).map((d) => d.data)).toString();
const eofs = (requestId: number) => received.filter((d) => d.requestId === requestId && d.eof).map((d) => d.taskId).sort();

describe("the session's log requests", () => {
  it("are answered with each task's log, each ended by eof", async () => {
    writeLog("t1", "a\nb\nc\n");
    ask({ requestId: 7, taskIds: ["t1", "t2"], follow: false, tail: 2 });
    await waitFor("both tasks ended", () => eofs(7).length === 2);
    expect(eofs(7)).toEqual(["t1", "t2"]);
    expect(textOf(7, "t1")).toBe("b\nc\n");
    expect(textOf(7, "t2")).toBe("");
  });

  it("with follow, send new output until the manager cancels them", async () => {
    writeLog("t1", "a\n");
    ask({ requestId: 1, taskIds: ["t1"], follow: true, tail: 0 });
    await waitFor("the log so far", () => textOf(1, "t1") === "a\n");
    appendFileSync(join(dir.path, "t1", "log"), "b\n");
    await waitFor("the new line", () => textOf(1, "t1") === "a\nb\n");

    down!.write({ logCancel: { requestId: 1 } });
    // messages are handled in order: once request 2 answers, request 1 is cancelled
    ask({ requestId: 2, taskIds: ["t1"], follow: true, tail: 0 });
    await waitFor("request 2's first answer", () => textOf(2, "t1") === "a\nb\n");
    appendFileSync(join(dir.path, "t1", "log"), "c\n");
    await waitFor("request 2's new line", () => textOf(2, "t1") === "a\nb\nc\n");
    expect(textOf(1, "t1")).toBe("a\nb\n");
    expect(eofs(1)).toEqual([]);
  });
});
