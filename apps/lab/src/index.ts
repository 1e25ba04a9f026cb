export * from "./lab.ts";
export * from "./sample-image.ts";
export * from "./managers.ts";
