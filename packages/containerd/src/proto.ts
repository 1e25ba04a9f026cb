// Loads containerd's vendored API protos (proto/containerd, see
// scripts/vendor-protos.sh) for grpc-js, and a protobufjs root to decode the
// events' Any payloads.

import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { fileURLToPath } from "node:url";
import protobuf from "protobufjs";

export const PROTO_DIR = fileURLToPath(new URL("../../../proto/containerd", import.meta.url));
const API = "github.com/containerd/containerd/api";

const SERVICE_PROTOS = ["containers", "content", "diff", "events", "images", "leases", "snapshots", "tasks", "version", "introspection"].map(
  (s) => `${API}/services/${s}/v1/${s}.proto`,
);
const EVENT_PROTOS = ["container", "content", "image", "namespace", "snapshot", "task"].map((e) => `${API}/events/${e}.proto`);

export const LOADER_OPTIONS = { keepCase: false, longs: Number, enums: String, defaults: true, oneofs: true } as const;

type Services = Record<string, { v1: Record<string, grpc.ServiceClientConstructor> }>;
let services: Services | undefined;

/** The protos, parsed on first use: importing this package (the lab, a pure helper) costs no parse. */
function loaded(): Services {
  if (!services) {
    const definition = protoLoader.loadSync([...SERVICE_PROTOS, `${API}/services/namespaces/v1/namespace.proto`], { ...LOADER_OPTIONS, includeDirs: [PROTO_DIR] });
    services = (grpc.loadPackageDefinition(definition) as unknown as { containerd: { services: Services } }).containerd.services;
  }
  return services;
}

/** The client constructor of containerd.services.<pkg>.v1.<service>. */
export function serviceClient(pkg: string, service: string): grpc.ServiceClientConstructor {
  const ctor = loaded()[pkg]?.v1[service];
  if (!ctor) throw new Error(`containerd proto has no service ${pkg}.v1.${service}`);
  return ctor;
}

let eventsRoot: protobuf.Root | undefined;

/** Decodes an event's Any (type_url "containerd.events.TaskExit", …) into a plain object. */
export function decodeEvent(typeUrl: string, value: Uint8Array): object {
  if (!eventsRoot) {
    const root = new protobuf.Root();
    root.resolvePath = (_origin, target) => (target.startsWith("google/protobuf/") ? target : `${PROTO_DIR}/${target}`);
    eventsRoot = root.loadSync(EVENT_PROTOS, { keepCase: false });
  }
  const name = typeUrl.replace(/^.*\//, "");
  const type = eventsRoot.lookupType(name);
  return type.toObject(type.decode(value), { ...LOADER_OPTIONS, longs: Number });
}
