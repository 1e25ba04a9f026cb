export * from "./proto.ts";
export * from "./status.ts";
export * from "./clients.ts";
export * from "./tls.ts";
export * from "./join.ts";
export * from "./timers.ts";
export * from "./session-timing.ts";
export * from "./codec.ts";
export type * as wire from "./wire.ts";
