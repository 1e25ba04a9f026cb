import { connect, createServer, type AddressInfo, type Server } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import type { PublishedPort } from "./plan.ts";
import { ProxyProtocolForwarder, proxyHeaderV1, proxyHeaderV2 } from "./proxy-protocol.ts";

describe("PROXY protocol headers", () => {
  it("v1 is one text line: protocol, source, destination, ports", () => {
    expect(proxyHeaderV1("192.168.100.100", 51234, "192.168.100.13", 8080).toString()).toBe("PROXY TCP4 192.168.100.100 192.168.100.13 51234 8080\r\n");
  });

  it("v2 is the signature, PROXY over TCP/IPv4 and 12 bytes of addresses and ports", () => {
    expect(proxyHeaderV2("192.168.100.100", 51234, "192.168.100.13", 8080).toString("hex")).toBe(
      "0d0a0d0a000d0a515549540a" + "21" + "11" + "000c" + "c0a86464" + "c0a8640d" + "c822" + "1f90",
    );
  });
});

const listening = (s: Server, port = 0): Promise<number> =>
  new Promise((resolve) => s.listen({ port, host: "127.0.0.1" }, () => resolve((s.address() as AddressInfo).port)));

describe("ProxyProtocolForwarder", () => {
  const closers: (() => void)[] = [];
  afterEach(() => closers.splice(0).forEach((c) => c()));

  it("forwards a connection to the port's destination after a header with the client's address, both ways, half-close included", async () => {
    const received: Buffer[] = [];
    const task = createServer({ allowHalfOpen: true }, (s) => {
      s.on("data", (d) => received.push(d));
      s.on("end", () => s.end("answer after the client's end"));
    });
    const taskPort = await listening(task);
    closers.push(() => task.close());
    const free = createServer();
    const port = await listening(free);
    await new Promise((r) => free.close(r));

    const forwarder = new ProxyProtocolForwarder({ host: "127.0.0.1" });
    closers.push(() => forwarder.close());
    const published: PublishedPort = { protocol: "tcp", port, to: "127.0.0.1", targetPort: taskPort, service: "web", proxyProtocol: "v1" };
    await forwarder.sync([published, { ...published, port: port + 1, proxyProtocol: undefined }]);
    expect(forwarder.ports).toEqual([port]); // ports without a header are the kernel's

    const answer = await new Promise<string>((resolve, reject) => {
      const c = connect({ port, host: "127.0.0.1", allowHalfOpen: true }, () => c.end("hello"));
      let got = "";
      c.on("data", (d) => (got += d)).on("end", () => resolve(got)).on("error", reject);
      closers.push(() => c.destroy());
    });
    expect(answer).toBe("answer after the client's end");
    const text = Buffer.concat(received).toString();
    expect(text).toMatch(new RegExp(`^PROXY TCP4 127\\.0\\.0\\.1 127\\.0\\.0\\.1 \\d+ ${port}\\r\\nhello$`));

    await forwarder.sync([]);
    expect(forwarder.ports).toEqual([]);
    const refused = await new Promise<string>((resolve) => connect({ port, host: "127.0.0.1" }).on("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? "")));
    expect(refused).toBe("ECONNREFUSED");
  });
});
