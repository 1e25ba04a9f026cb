export * from "./proto.ts";
export * from "./status.ts";
export * from "./clients.ts";
export type * as wire from "./wire.ts";
