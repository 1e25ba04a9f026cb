// What reads and checks identities, tokens and certificates: light to load (node:crypto only).
// The CA and CSRs, which need @peculiar/x509, are in @vipmesh/pki/signing.
export * from "./identity.ts";
export * from "./roles.ts";
export * from "./token.ts";
