// The images the cluster's nodes hold (loaded with `vipmesh image load`, or
// pulled for tasks): /distribution/{name}/json, which the docker CLI asks on
// `docker service create IMAGE` to pin the image to its digest, and a
// cluster-wide GET /images/json. Both ask the nodes' agents (ListImages).

import { refersTo, VipmeshError } from "@vipmesh/core";
import { type Ctx, HttpError, type Route } from "../http.ts";
import type { NodeImage, NodeImageList } from "../ops.ts";

const READ = "ListImages";

/** Every node's list; none (not an error) when no node can hold images. */
async function nodeImages(ctx: Ctx): Promise<NodeImageList[]> {
  try {
    return await ctx.ops.listImages();
  } catch (err) {
    if (err instanceof VipmeshError && err.code === "failed_precondition") return [];
    throw err;
  }
}

/** Docker's DistributionInspect, from the first node that holds the image. */
async function distribution(ctx: Ctx) {
  const name = ctx.params.name!;
  for (const node of await nodeImages(ctx)) {
    const image = node.images.find((i) => refersTo(i, name));
    if (!image) continue;
    return {
      Descriptor: { mediaType: image.mediaType, digest: image.digest, size: image.size },
      Platforms: [{ architecture: image.architecture, os: image.os }],
    };
  }
  throw new HttpError(404, `No such image: ${name}`);
}

/** Docker's image summaries, one per digest across the nodes; Containers counts the tasks using it. */
async function list(ctx: Ctx) {
  const byDigest = new Map<string, { image: NodeImage; names: Set<string>; tasks: number }>();
  for (const node of await nodeImages(ctx)) {
    for (const image of node.images) {
      const entry = byDigest.get(image.digest) ?? { image, names: new Set<string>(), tasks: 0 };
      entry.names.add(image.name);
      entry.tasks += image.tasks.length;
      byDigest.set(image.digest, entry);
    }
  }
  return [...byDigest.values()].map(({ image, names, tasks }) => ({
    Id: image.digest,
    ParentId: "",
    RepoTags: [...names].sort(),
    RepoDigests: [...names].map((n) => `${n.replace(/:[^:/]*$/, "")}@${image.digest}`).sort(),
    Created: Math.floor(Date.parse(image.createdAt) / 1000) || 0,
    Size: image.size,
    SharedSize: -1,
    VirtualSize: image.size,
    Labels: {},
    Containers: tasks,
  }));
}

export const imageRoutes: Route[] = [
  { method: "GET", path: "/distribution/{name*}/json", op: READ, handle: distribution },
  { method: "GET", path: "/images/json", op: READ, handle: list },
];
