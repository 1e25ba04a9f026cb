// What makes certificates and CSRs: the CA, etcd's certificates, and a node's
// key and CSR. Apart from the main entry because @peculiar/x509 takes ~100 ms
// to load, which a command that only reads identities (every CLI call, every
// `vipmesh whoami` task) should not pay: the agent loads this when it joins or renews.
export * from "./ca.ts";
export * from "./etcd-certs.ts";
export { newKeyAndCsr } from "./x509.ts";
