// What a task runs, and with what. A spec with an image runs it as a container
// (TaskRuntime "container", through containerd) — unless the image is one
// vipmesh runs as a host process (KNOWN_IMAGES: vipmesh/whoami). Without an
// image the task is a host process, as before images. For both, Docker's rule:
//   Command given        replaces the entrypoint (--entrypoint, compose "entrypoint"); the image's CMD is dropped
//   Args given           replace the CMD (docker service create IMAGE ARGS…, compose "command")
//   neither              the image's entrypoint ++ CMD
// A process task's "image" is a KNOWN_IMAGES entry or none; with neither a
// command nor args it has nothing to run, and the agent rejects it saying so.

import type { ContainerSpec, Task, TaskRuntime } from "./types.ts";

interface KnownImage {
  entrypoint: string[];
  /** Docker's CMD: the arguments when the spec gives none. */
  defaultArgs: string[];
}

/** Images vipmesh can run, by repository (Docker Hub's, without registry, `library/`, tag or digest). */
const KNOWN_IMAGES: ReadonlyMap<string, KnownImage> = new Map([["vipmesh/whoami", { entrypoint: ["vipmesh", "whoami"], defaultArgs: ["--port", "80"] }]]);

const DOCKER_HUB_PREFIXES = ["docker.io/", "index.docker.io/", "registry-1.docker.io/"];

/** An image reference's repository on Docker Hub's terms: "docker.io/library/x:1@sha256:…" → "x". */
export function imageRepository(image: string): string {
  let ref = image.trim();
  const at = ref.indexOf("@");
  if (at >= 0) ref = ref.slice(0, at); // digest
  const colon = ref.lastIndexOf(":");
  if (colon > ref.lastIndexOf("/")) ref = ref.slice(0, colon); // tag (a colon before the last slash is a registry's port)
  for (const p of DOCKER_HUB_PREFIXES) if (ref.startsWith(p)) ref = ref.slice(p.length);
  if (ref.startsWith("library/")) ref = ref.slice("library/".length);
  return ref;
}

const knownImage = (image: string): KnownImage | undefined => KNOWN_IMAGES.get(imageRepository(image));

/** What runs a task with this spec: a container for an image, unless vipmesh runs that image as a process. */
export function taskRuntime(container: Pick<ContainerSpec, "image">): TaskRuntime {
  const image = container.image?.trim() ?? "";
  return image === "" || knownImage(image) ? "process" : "container";
}

/** An image's own entrypoint and CMD (its config's, or a known image's). */
export interface ImageCommand {
  entrypoint: string[];
  cmd: string[];
}

/** Docker's rule over a spec and its image's defaults: the argv to run, or why there is none. */
export function commandOf(container: Pick<ContainerSpec, "command" | "args" | "image">, image: ImageCommand): { argv: string[] } | { error: string } {
  const args = container.args ?? [];
  const argv =
    container.command.length > 0 ? [...container.command, ...args] : [...image.entrypoint, ...(args.length > 0 ? args : image.cmd)];
  if (argv.length > 0) return { argv };
  const what = container.image?.trim() ? `image "${container.image.trim()}" has no entrypoint or CMD` : "the task has no command and no image";
  return { error: `${what}: give the task a command (vipmesh service create [--image REF] -- COMMAND…, docker service create IMAGE COMMAND…, or compose "entrypoint"/"command")` };
}

/** The argv of a process task (taskRuntime "process"), or why there is none. */
export function taskCommand(container: ContainerSpec): { argv: string[] } | { error: string } {
  const image = container.image?.trim() ?? "";
  const known = image === "" ? undefined : knownImage(image);
  return commandOf(container, known ? { entrypoint: known.entrypoint, cmd: known.defaultArgs } : { entrypoint: [], cmd: [] });
}
/** A task's host name (its UTS namespace's, and /etc/hosts'): Docker's Hostname when given, else its short ID, as Docker's. */
export const taskHostname = (t: Pick<Task, "id" | "spec">): string => t.spec.container.hostname || t.id.slice(0, 12);
