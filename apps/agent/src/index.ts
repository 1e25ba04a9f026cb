export { Agent, type AgentOptions, DEFAULT_STOP_GRACE_MS } from "./agent.ts";
export { MANAGERS_FILE, ManagerAddresses } from "./session/managers.ts";
export { ManagerSession } from "./session/session.ts";
export { ContainerRunner } from "./tasks/container-runner.ts";
export { overlayPlanFor } from "./overlay/plan.ts";
export * from "./overlay/types.ts";
export * from "./sandbox/types.ts";
export * from "./ipsec/types.ts";
export { names } from "./exec/names.ts";
export { KernelOverlay } from "./overlay/kernel.ts";
export { KernelSandboxes } from "./sandbox/kernel.ts";
export { KernelNftables } from "./lb/nftables/kernel.ts";
export { KernelIpvs } from "./lb/ipvs/kernel.ts";
export type { LoadBalancer } from "./lb/types.ts";
export { KernelMesh } from "./mesh/kernel.ts";
export { KernelIpsec } from "./ipsec/kernel.ts";
// what KernelNftables feeds to `nft -f`: for bench/nft-programming.ts, which times exactly that
export { renderChange, renderRuleset } from "./lb/nftables/render.ts";
export { EmbeddedDns, SANDBOX_DESCRIPTORS } from "./dns/server.ts";
// what KernelIpvs writes with `ipvsadm --restore`: for bench/dataplanes-in-vm.ts's libnetwork baseline
export { ipvsChanges, ipvsStateFor } from "./lb/ipvs/plan.ts";
// `vipmesh exec` enters a task as confined as its health checks are
// (a container's PID 1 is entered as its own user, without waiting for an init of confine's)
export { CONFINE, containerInitUser, enterArgs, isTaskInit } from "./tasks/confine.ts";
