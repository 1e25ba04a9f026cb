// The records this client hands out (see packages/containerd/README.md).

export interface ImageConfig {
  entrypoint: string[];
  cmd: string[];
  env: string[];
  workingDir: string;
  user: string;
  labels: Record<string, string>;
  stopSignal?: string;
}

export interface ImageRecord {
  name: string; // normalized: docker.io/library/x:tag
  digest: string; // manifest digest
  mediaType: string; // that manifest's (or index's) media type
  size: number; // bytes of its content (manifest, config, layers)
  config: ImageConfig;
  chainId: string; // its top snapshot, unpacked
  createdAt: string;
}

export interface TaskInfo {
  id: string;
  pid: number;
  status: "created" | "running" | "stopped" | "paused" | "unknown";
  exitStatus?: number;
}

export interface ExitEvent {
  id: string;
  pid: number;
  exitStatus: number;
  exitedAt: string;
}
