// @vipmesh/containerd: a containerd client over its gRPC API (grpc-js on the
// unix socket, the containerd-namespace header on every call), private
// containerd daemons, and image tarball builders. See README.md.

export { Containerd, DELETE_WAIT_MS, RUNTIME, SNAPSHOTTER, taskInfoOf } from "./client.ts";
export { startContainerd, type ContainerdDaemon } from "./daemon.ts";
export { mountsUnder, shimsOf, unmountUnder } from "./host.ts";
export { buildImageArchive, type ImageFile } from "./build.ts";
export {
  normalizeImageRef,
  parseImageRef,
  formatImageRef,
  selectManifest,
  matchRank,
  refersTo,
  resolveImage,
  type NamedImage,
  type ImageReference,
  type Descriptor,
} from "./reference.ts";
export { ContainerdError, DEFAULT_TIMEOUT_MS, type ErrorCode } from "./rpc.ts";
export type { ImageConfig, ImageRecord, TaskInfo, ExitEvent } from "./types.ts";
