import { fileURLToPath } from "node:url";
export * from "./sim-agent.ts";
export * from "./wait.ts";

/**
 * A steady HTTP request loop to run where the client is (`node REQUEST_LOOP ADDR PORT
 * [TIMEOUT_MS] [COUNT]`, e.g. under `ip netns exec`): one GET at a time, each on a new
 * connection; on SIGTERM it prints {ok, failed, errors, tasks} as one JSON line.
 */
export const REQUEST_LOOP = fileURLToPath(new URL("./request-loop.mjs", import.meta.url));
