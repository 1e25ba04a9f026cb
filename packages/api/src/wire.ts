// Generated wire types under short names.
export type { Node__Output as Node } from "./generated/vipmesh/v1/Node.ts";
export type { Network__Output as Network } from "./generated/vipmesh/v1/Network.ts";
export type { Service__Output as Service } from "./generated/vipmesh/v1/Service.ts";
export type { Task__Output as Task } from "./generated/vipmesh/v1/Task.ts";
export type { ServiceSpec as ServiceSpecInput, ServiceSpec__Output as ServiceSpec } from "./generated/vipmesh/v1/ServiceSpec.ts";
export type { WatchMessage__Output as WatchMessage } from "./generated/vipmesh/v1/WatchMessage.ts";
export type { WatchEvent__Output as WatchEvent } from "./generated/vipmesh/v1/WatchEvent.ts";
export type { ServiceConvergence__Output as ServiceConvergence } from "./generated/vipmesh/v1/ServiceConvergence.ts";
/** SessionUp as an agent writes it; SessionUpDecoded as the manager reads it (defaults filled in). */
export type { SessionUp, SessionUp__Output as SessionUpDecoded } from "./generated/vipmesh/v1/SessionUp.ts";
export type { SessionDown__Output as SessionDown } from "./generated/vipmesh/v1/SessionDown.ts";
export type { Assignment__Output as Assignment } from "./generated/vipmesh/v1/Assignment.ts";
export type { ClusterServiceHandlers } from "./generated/vipmesh/v1/ClusterService.ts";
export type { DispatcherServiceHandlers } from "./generated/vipmesh/v1/DispatcherService.ts";
export type { LogChunk__Output as LogChunk } from "./generated/vipmesh/v1/LogChunk.ts";
export type { LogRequest__Output as LogRequest } from "./generated/vipmesh/v1/LogRequest.ts";
export type { CaServiceHandlers } from "./generated/vipmesh/v1/CaService.ts";
export type { NodeImage__Output as NodeImage } from "./generated/vipmesh/v1/NodeImage.ts";
export type { NodeImages__Output as NodeImages } from "./generated/vipmesh/v1/NodeImages.ts";
export type { NodeImageResult__Output as NodeImageResult } from "./generated/vipmesh/v1/NodeImageResult.ts";
export type { LoadImageChunk, LoadImageChunk__Output as LoadImageChunkDecoded } from "./generated/vipmesh/v1/LoadImageChunk.ts";
export type { LoadImageResponse__Output as LoadImageResponse } from "./generated/vipmesh/v1/LoadImageResponse.ts";
export type { ImageLoadData__Output as ImageLoadData } from "./generated/vipmesh/v1/ImageLoadData.ts";
export type { ImageRequest__Output as ImageRequest } from "./generated/vipmesh/v1/ImageRequest.ts";
export type { ImageReply, ImageReply__Output as ImageReplyDecoded } from "./generated/vipmesh/v1/ImageReply.ts";
export type { ManagerInfo__Output as ManagerInfo } from "./generated/vipmesh/v1/ManagerInfo.ts";
