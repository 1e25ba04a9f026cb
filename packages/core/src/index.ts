export * from "./types.ts";
export * from "./errors.ts";
export * from "./ipv4.ts";
export * from "./ipam.ts";
export * from "./allocators.ts";
export * from "./validation.ts";
export * from "./constraints.ts";
export * from "./publish.ts";
export * from "./service-update.ts";
export * from "./scheduling.ts";
export * from "./network-view.ts";
// Named, so it wins over network-view.ts's own isTaskReady until that file imports this one.
export { isTaskReady, type TaskReadinessFacts } from "./task-readiness.ts";
export * from "./task-definition.ts";
export * from "./lb-plan.ts";
export * from "./dataplanes.ts";
export * from "./dns-records.ts";
export * from "./sandbox-derivation.ts";
export { seededRandom } from "./seeded-random.ts";
