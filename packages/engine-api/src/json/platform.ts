// What Docker reports of the machine: Go's names for it.

import { arch } from "node:os";

/** Go's GOARCH-ish names Docker prints (uname -m style): x64 → x86_64, arm64 → aarch64. */
const ARCH: Record<string, string> = { x64: "x86_64", arm64: "aarch64", arm: "armv7l", ia32: "i386" };

export const ARCHITECTURE = ARCH[arch()] ?? arch();
/** /version's Arch is Go's GOARCH: amd64, arm64. */
export const GOARCH = ({ x64: "amd64", arm64: "arm64", arm: "arm", ia32: "386" } as Record<string, string>)[arch()] ?? arch();
