// A create retried with its request ID is answered with the first result:
// one object, whether the repeat comes after the answer or beside the first call.

import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { call, everything, failure, type Harness, serviceSpec, startHarness } from "./harness.ts";

let h: Harness;
beforeEach(async () => {
  h = await startHarness();
});
afterEach(async () => {
  await h.close();
});

describe("request IDs", () => {
  it("a repeated CreateService returns the first service and makes no second", async () => {
    const req = { spec: serviceSpec("web"), requestId: "7d1c6a1e-retry" };
    const first = (await call(h.client, "createService", req)).service!;
    const again = (await call(h.client, "createService", req)).service!;
    expect(again.id).toBe(first.id);
    expect(again.version).toBe(first.version);
    expect((await call(h.client, "listServices", {})).services.map((s) => s.spec?.annotations?.name)).toEqual(["web"]);
  });

  it("repeats in flight at once make one service", async () => {
    const req = { spec: serviceSpec("api"), requestId: "in-flight" };
    const answers = await Promise.all([1, 2, 3].map(() => call(h.client, "createService", req)));
    expect(new Set(answers.map((a) => a.service!.id)).size).toBe(1);
    expect((await call(h.client, "listServices", {})).services).toHaveLength(1);
  });

  it("another request ID for the same name is refused ALREADY_EXISTS, leaving everything as it was", async () => {
    await call(h.client, "createService", { spec: serviceSpec("web"), requestId: "one" });
    const before = await everything(h);
    const f = await failure(call(h.client, "createService", { spec: serviceSpec("web"), requestId: "two" }));
    expect(f).toEqual({ code: "ALREADY_EXISTS", details: "service web already exists" });
    expect(await everything(h)).toEqual(before);
  });

  it("a refused create is not remembered: its repeat is judged again", async () => {
    const bad = { spec: serviceSpec("db", { networks: [{ target: "later" }] }), requestId: "after-the-network" };
    expect((await failure(call(h.client, "createService", bad))).code).toBe("NOT_FOUND");
    await call(h.client, "createNetwork", { spec: { name: "later", driver: "overlay" } });
    expect((await call(h.client, "createService", bad)).service?.spec?.annotations?.name).toBe("db");
  });

  it("a repeated CreateNetwork returns the first network; the same ID on another method is its own", async () => {
    const req = { spec: { name: "appnet", driver: "overlay" }, requestId: "shared-id" };
    const first = (await call(h.client, "createNetwork", req)).network!;
    expect((await call(h.client, "createNetwork", req)).network!.id).toBe(first.id);
    const service = (await call(h.client, "createService", { spec: serviceSpec("web"), requestId: "shared-id" })).service!;
    expect(service.spec?.annotations?.name).toBe("web");
    expect((await call(h.client, "listNetworks", {})).networks.filter((n) => n.spec?.name === "appnet")).toHaveLength(1);
  });
});
