// What a task's process runs. vipmesh tasks are processes, not images (images
// come with a later issue), so a ContainerSpec is read as Docker would read it
// for an image with no entrypoint of its own — unless the image is one vipmesh
// knows (KNOWN_IMAGES), whose entrypoint and default arguments stand in:
//   Command given        Command ++ Args, whatever the image (--entrypoint, compose "entrypoint")
//   a known image        its entrypoint ++ (Args, or its default arguments)
//   Args given           Args (docker service create IMAGE COMMAND…, compose "command")
//   none of these        an error naming the image and the fix: the agent rejects the task with it

import type { ContainerSpec, Task } from "./types.ts";

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

const FIX = `give the task a command (docker service create … IMAGE COMMAND, or compose "entrypoint"/"command"), or use ${[...KNOWN_IMAGES.keys()].join(", ")}`;

/** The argv of a task's process, or why there is none. */
export function taskCommand(container: ContainerSpec): { argv: string[] } | { error: string } {
  const args = container.args ?? [];
  if (container.command.length > 0) return { argv: [...container.command, ...args] };
  const image = container.image?.trim() ?? "";
  const known = image === "" ? undefined : knownImage(image);
  if (known) return { argv: [...known.entrypoint, ...(args.length > 0 ? args : known.defaultArgs)] };
  if (args.length > 0) return { argv: [...args] };
  if (image === "") return { error: `the task has no command and no image: ${FIX}` };
  return { error: `image "${image}" is not one vipmesh can run (tasks run processes; images come later): ${FIX}` };
}

/** A task's host name (its UTS namespace's, and /etc/hosts'): Docker's Hostname when given, else its short ID, as Docker's. */
export const taskHostname = (t: Pick<Task, "id" | "spec">): string => t.spec.container.hostname || t.id.slice(0, 12);
