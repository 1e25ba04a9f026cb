export { Agent, type AgentOptions } from "./agent.ts";
export { overlayPlanFor } from "./overlay-plan.ts";
export * from "./kernel/types.ts";
export { KernelOverlay } from "./kernel/overlay.ts";
export { KernelSandboxes } from "./kernel/sandbox.ts";
export { KernelNftables } from "./dataplane/nftables/kernel.ts";
export { KernelIpvs } from "./dataplane/ipvs/kernel.ts";
export type { LoadBalancer } from "./dataplane/types.ts";
export { KernelMesh } from "./mesh/kernel.ts";
export { KernelIpsec } from "./kernel/ipsec.ts";
// what KernelNftables feeds to `nft -f`: for bench/nft-programming.ts, which times exactly that
export { renderChange, renderRuleset } from "./dataplane/nftables/render.ts";
export { EmbeddedDns } from "./dns/server.ts";
// what KernelIpvs writes with `ipvsadm --restore`: for bench/dataplanes-in-vm.ts's libnetwork baseline
export { ipvsChanges, ipvsStateFor } from "./dataplane/ipvs/plan.ts";
