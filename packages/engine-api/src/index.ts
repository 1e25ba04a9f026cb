// The Docker Engine API: the HTTP server (server.ts), its routes (routes/),
// and the Docker JSON shapes of vipmesh's objects, both ways (json/).
export * from "./filters.ts";
export * from "./http.ts";
export * from "./ops.ts";
