// LbPlans shared by the renderer's golden tests and the fake's packet walks.

import type { LbBackend, LbPlan, LbService } from "@vipmesh/core";

export const svc = (
  serviceId: string,
  vip: string,
  backends: (string | [string, number])[],
  scheduler: LbService["scheduler"] = "random",
  affinityTimeoutS?: number,
): LbService => ({
  serviceId,
  name: serviceId.replace(/^svc-/, ""),
  vip,
  scheduler,
  ...(affinityTimeoutS !== undefined ? { affinityTimeoutS } : {}),
  backends: backends.map((b): LbBackend => (typeof b === "string" ? { ip: b, weight: 1 } : { ip: b[0], weight: b[1] })),
});

/** 1001 services × 2 backends: 2002 elements, in three statements of at most 1,000. */
function manyServices(): LbPlan {
  const services: LbService[] = [];
  for (let i = 0; i < 1001; i++) {
    const third = 1 + Math.floor(i / 250);
    const fourth = 2 + (i % 250);
    services.push(svc(`svc-${String(i).padStart(4, "0")}`, `10.1.${third}.${fourth}`, [`10.2.${third}.${fourth}`, `10.3.${third}.${fourth}`]));
  }
  return { services };
}

/** Golden name → plan. */
export const goldenPlans: Record<string, LbPlan> = {
  empty: { services: [] },
  "one-service-three-backends": { services: [svc("svc-web", "10.0.1.2", ["10.0.1.5", "10.0.1.6", "10.0.1.7"])] },
  "two-services-one-without-backends": {
    services: [svc("svc-web", "10.0.1.2", ["10.0.1.5", "10.0.1.6"]), svc("svc-db", "10.0.1.3", [])],
  },
  "weights-1-3": { services: [svc("svc-web", "10.0.1.2", [["10.0.1.5", 1], ["10.0.1.6", 3]])] },
  "weight-0-drains": { services: [svc("svc-web", "10.0.1.2", [["10.0.1.5", 0], ["10.0.1.6", 1]]), svc("svc-old", "10.0.1.4", [["10.0.1.9", 0]])] },
  "rr-and-random": {
    services: [svc("svc-web", "10.0.1.2", ["10.0.1.5", "10.0.1.6"]), svc("svc-api", "10.0.1.3", [["10.0.1.8", 1], ["10.0.1.9", 2]], "rr")],
  },
  "chunked-2002-elements": manyServices(),
  // two random VIPs share the chain of their timeout; a draining task is no affinity backend; db pays nothing
  "client-ip-affinity": {
    services: [
      svc("svc-web", "10.0.1.2", ["10.0.1.5", "10.0.1.6", "10.0.1.7"], "random", 10800),
      svc("svc-db", "10.0.1.3", ["10.0.1.8"]),
      svc("svc-cache", "10.0.1.4", [["10.0.1.9", 0], ["10.0.1.10", 1]], "random", 10800),
    ],
  },
  // rr with affinity in its own chain; another timeout, another shared chain; no ready task, no chain
  "client-ip-affinity-rr-and-timeouts": {
    services: [
      svc("svc-api", "10.0.1.2", [["10.0.1.8", 1], ["10.0.1.9", 2]], "rr", 60),
      svc("svc-web", "10.0.1.3", ["10.0.1.5", "10.0.1.6"], "random", 600),
      svc("svc-old", "10.0.1.4", [["10.0.1.7", 0]], "random", 10800),
    ],
  },
};
