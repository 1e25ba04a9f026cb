// Pulling from a registry (v2 API): placeholder until the real one lands.

import type { ArchiveImage } from "./archive.ts";
import type { Rpc } from "./rpc.ts";

export async function pullImage(
  name: string,
  _rpc: Rpc,
  _lease: string,
  _onProgress?: (p: { doneBytes: number; totalBytes: number }) => void,
): Promise<Pick<ArchiveImage, "manifest" | "manifestJson" | "config" | "configJson" | "layers">> {
  throw new Error(`pulling ${name}: not implemented yet`);
}
