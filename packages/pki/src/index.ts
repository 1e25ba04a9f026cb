export * from "./ca.ts";
export * from "./identity.ts";
export * from "./roles.ts";
export * from "./token.ts";
export { newKeyAndCsr } from "./x509.ts";
