// vipmesh image load|ls|rm: images in the nodes' containerd, for machines
// without a registry. A load streams the tarball to the manager in chunks,
// which relays them to the nodes as they come; every answer is per node.

import { createReadStream } from "node:fs";
import { once } from "node:events";
import type { Readable } from "node:stream";
import type * as grpc from "@grpc/grpc-js";
import type { ClusterServiceClient, wire } from "@vipmesh/api";
import type { Command } from "commander";
import { AlreadyReported, CommandFailed, forEachTarget, UsageError } from "../errors.ts";
import type { Io } from "../io.ts";
import { collect } from "../options.ts";
import { formatTable } from "../table.ts";
import { withManager } from "./shared.ts";

/** What each LoadImage message carries at most. */
export const LOAD_CHUNK_BYTES = 1024 * 1024;

export const IMAGE_HEADERS = ["NODE", "IMAGE", "DIGEST", "SIZE", "IN USE"] as const;

/** Docker's sizes: decimal units, three significant digits ("4.21MB"). */
export function humanSize(bytes: number): string {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let n = bytes;
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${Number(n.toPrecision(3))}${units[i]}`;
}

/** "sha256:0123456789abcdef…" → "sha256:0123456789ab", as docker's --digests column is read. */
export const shortDigest = (digest: string): string => digest.replace(/^(sha256:[0-9a-f]{12}).*$/, "$1");

export function imageRows(nodes: readonly wire.NodeImages[]): string[][] {
  return nodes.flatMap((n) => n.images.map((i) => [n.hostname, i.name, shortDigest(i.digest), humanSize(i.size), i.tasks.join(", ")]));
}

/** Prints each node's failure as "Error: node: why"; throws AlreadyReported when there was one. */
function reportNodeErrors(io: Io, nodes: readonly { hostname: string; error: string }[]): void {
  const failed = nodes.filter((n) => n.error);
  for (const n of failed) io.stderr(`Error: ${n.hostname}: ${n.error}\n`);
  if (failed.length > 0) throw new AlreadyReported(1);
}

/** The tarball as chunks: a file, or stdin for "-". */
function openTarball(file: string): Readable {
  if (file === "-" && process.stdin.isTTY) throw new UsageError("image load -: stdin is a terminal; pipe the tarball in (docker save IMAGE | vipmesh image load -)");
  if (file === "-") return process.stdin;
  return createReadStream(file, { highWaterMark: LOAD_CHUNK_BYTES });
}

/**
 * Streams the tarball in LOAD_CHUNK_BYTES chunks, waiting while the manager's
 * window is full; resolves with its answer. A refusal by the manager (even one
 * that comes while the file is still read) rejects with the manager's error;
 * only a failure to read the file is "cannot read the image tarball".
 */
export async function streamLoad(client: Pick<ClusterServiceClient, "loadImage">, source: Readable, nodes: string[]): Promise<wire.LoadImageResponse> {
  let stream!: grpc.ClientWritableStream<wire.LoadImageChunk>;
  const answer = new Promise<wire.LoadImageResponse>((resolve, reject) => {
    stream = client.loadImage((err, res) => (err ? reject(err) : resolve(res!)));
  });
  let refused = false;
  answer.catch(() => {
    refused = true; // awaited below; a refusal while the file is still read must not go unhandled
  });
  const answered = answer.then(
    () => {},
    () => {},
  );
  let first = true;
  try {
    reading: for await (const piece of source) {
      const data = piece as Buffer;
      for (let at = 0; at < data.length; at += LOAD_CHUNK_BYTES) {
        if (refused) break reading;
        const ok = stream.write({ ...(first ? { nodes } : {}), data: data.subarray(at, at + LOAD_CHUNK_BYTES) });
        first = false;
        if (!ok) await Promise.race([once(stream, "drain").catch(() => {}), answered]);
      }
    }
  } catch (err) {
    stream.cancel();
    throw new CommandFailed(`cannot read the image tarball: ${(err as Error).message}`);
  }
  if (!refused) stream.end({ ...(first ? { nodes } : {}), data: Buffer.alloc(0), last: true });
  return answer;
}

export function registerImageCommands(program: Command, io: Io): void {
  const image = program.command("image").description("Manage the images on the nodes (for machines without a registry)");

  image
    .command("load")
    .description("Load an image tarball (docker save or an OCI layout) into every ready node with containers, or those named")
    .argument("<file>", 'the tarball; "-" reads it from stdin')
    .option("--node <node>", "load into this node only: ID, ID prefix or hostname (repeatable)", collect)
    .action(async (file: string, opts: { node?: string[] }, cmd: Command) => {
      const source = openTarball(file);
      try {
        const res = await withManager(io, cmd, async (conn) => {
          try {
            return await streamLoad(await conn.reachable(), source, opts.node ?? []);
          } catch (err) {
            throw conn.failure(err);
          }
        });
        const nodes = [...res.nodes].sort((a, b) => a.hostname.localeCompare(b.hostname));
        for (const n of nodes) for (const name of n.images) io.stdout(`${n.hostname}: Loaded image: ${name}\n`);
        reportNodeErrors(io, nodes);
      } finally {
        if (file !== "-") source.destroy();
      }
    });

  image
    .command("ls")
    .alias("list")
    .description("List the images of every ready node with containers, or of those named")
    .option("--node <node>", "only this node: ID, ID prefix or hostname (repeatable)", collect)
    .option("--json", "print one JSON array, a node each")
    .option("-q, --quiet", "print image names only, once each")
    .action(async (opts: { node?: string[]; json?: boolean; quiet?: boolean }, cmd: Command) => {
      const { nodes } = await withManager(io, cmd, (conn) => conn.call("listImages", { nodes: opts.node ?? [] }));
      const sorted = [...nodes].sort((a, b) => a.hostname.localeCompare(b.hostname));
      if (opts.json) io.stdout(`${JSON.stringify(sorted, null, 2)}\n`);
      else if (opts.quiet) io.stdout([...new Set(sorted.flatMap((n) => n.images.map((i) => i.name)))].map((name) => `${name}\n`).join(""));
      else io.stdout(formatTable(IMAGE_HEADERS, imageRows(sorted)));
      reportNodeErrors(io, sorted);
    });

  image
    .command("rm")
    .alias("remove")
    .description("Remove images from the nodes that have them; refused while a task there uses one, unless --force")
    .argument("<image...>", "image reference: name[:tag] or name@digest")
    .option("--node <node>", "only from this node: ID, ID prefix or hostname (repeatable)", collect)
    .option("-f, --force", "remove it even while tasks use it (they keep running what they run)")
    .action(async (refs: string[], opts: { node?: string[]; force?: boolean }, cmd: Command) => {
      await withManager(io, cmd, (conn) =>
        forEachTarget(refs, io.stderr, async (ref) => {
          const { nodes } = await conn.call("removeImage", { image: ref, nodes: opts.node ?? [], force: opts.force === true });
          const sorted = [...nodes].sort((a, b) => a.hostname.localeCompare(b.hostname));
          for (const n of sorted) for (const name of n.images) io.stdout(`${n.hostname}: Deleted: ${name}\n`);
          const failed = sorted.filter((n) => n.error);
          if (failed.length > 0) throw new CommandFailed(failed.map((n) => `${n.hostname}: ${n.error}`).join("; "));
        }),
      );
    });
}
