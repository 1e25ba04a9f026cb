// The Docker Engine API: the HTTP server (server.ts), its routes (routes/),
// and the Docker JSON shapes of vipmesh's objects, both ways (json/).

import type { Route } from "./http.ts";
import { imageRoutes } from "./routes/images.ts";
import { networkRoutes } from "./routes/networks.ts";
import { nodeRoutes } from "./routes/nodes.ts";
import { serviceRoutes } from "./routes/services.ts";
import { systemRoutes } from "./routes/system.ts";
import { taskRoutes } from "./routes/tasks.ts";

export * from "./filters.ts";
export * from "./http.ts";
export * from "./json/network.ts";
export * from "./json/node.ts";
export { type ServiceStatus, clientAddressOf, isGlobalMode, serviceJson, serviceSpecFromDocker, serviceSpecJson } from "./json/service.ts";
export { type Loose, portJson, taskJson, taskSpecJson } from "./json/task.ts";
export * from "./ops.ts";
export * from "./server.ts";
export * from "./version.ts";

/** Every route the manager serves. */
export const ROUTES: readonly Route[] = [...systemRoutes, ...imageRoutes, ...nodeRoutes, ...networkRoutes, ...serviceRoutes, ...taskRoutes];
