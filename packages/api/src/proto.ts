// Loads proto/vipmesh/v1 with exactly the options the generated types assume
// (see the `gen` script in package.json).

import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { fileURLToPath } from "node:url";
import type { ProtoGrpcType as ClusterProto } from "./generated/cluster.ts";
import type { ProtoGrpcType as DispatcherProto } from "./generated/dispatcher.ts";
import type { ProtoGrpcType as CaProto } from "./generated/ca.ts";

export const PROTO_DIR = fileURLToPath(new URL("../../../proto", import.meta.url));

export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_DIR],
};

const definition = protoLoader.loadSync(["vipmesh/v1/cluster.proto", "vipmesh/v1/dispatcher.proto", "vipmesh/v1/ca.proto"], LOADER_OPTIONS);
const loaded = grpc.loadPackageDefinition(definition) as unknown as ClusterProto & DispatcherProto & CaProto;

export const vipmeshV1 = loaded.vipmesh.v1;
export const ClusterServiceDef = vipmeshV1.ClusterService.service;
export const DispatcherServiceDef = vipmeshV1.DispatcherService.service;
export const CaServiceDef = vipmeshV1.CaService.service;
