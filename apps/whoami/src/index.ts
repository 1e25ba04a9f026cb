export { type StartWhoamiOptions, type WhoamiServer, startWhoami } from "./server.ts";
