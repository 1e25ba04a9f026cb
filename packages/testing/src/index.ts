export * from "./sim-agent.ts";
export * from "./wait.ts";
export { seededRandom } from "./random.ts";
