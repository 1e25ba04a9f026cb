export * from "./sim-agent.ts";
export * from "./wait.ts";
