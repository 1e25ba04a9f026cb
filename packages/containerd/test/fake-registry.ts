// A registry for pull tests, on 127.0.0.1 only: the distribution API's GETs
// for one repository, behind an anonymous bearer token like Docker Hub's.

import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface FakeRegistry {
  host: string; // 127.0.0.1:<port>
  manifests: Map<string, { mediaType: string; body: Buffer }>; // by tag or digest
  blobs: Map<string, Buffer>; // by digest
  requests: string[];
  close(): Promise<void>;
}

const TOKEN = "fake-token";

export async function startFakeRegistry(repo: string): Promise<FakeRegistry> {
  const manifests = new Map<string, { mediaType: string; body: Buffer }>();
  const blobs = new Map<string, Buffer>();
  const requests: string[] = [];
  let server: Server | undefined;
  server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    requests.push(`${req.method} ${url.pathname}`);
    if (url.pathname === "/token") {
      res.writeHead(200, { "content-type": "application/json" });
      return void res.end(JSON.stringify({ token: url.searchParams.get("scope") === `repository:${repo}:pull` ? TOKEN : "wrong" }));
    }
    if (req.headers.authorization !== `Bearer ${TOKEN}`) {
      const port = (server?.address() as AddressInfo).port;
      res.writeHead(401, { "www-authenticate": `Bearer realm="http://127.0.0.1:${port}/token",service="fake",scope="repository:${repo}:pull"` });
      return void res.end();
    }
    const m = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(url.pathname);
    if (!m || m[1] !== repo) {
      res.writeHead(404);
      return void res.end();
    }
    if (m[2] === "manifests") {
      const found = manifests.get(m[3] as string);
      if (!found) {
        res.writeHead(404, { "content-type": "application/json" });
        return void res.end(JSON.stringify({ errors: [{ code: "MANIFEST_UNKNOWN" }] }));
      }
      res.writeHead(200, { "content-type": found.mediaType });
      return void res.end(found.body);
    }
    const blob = blobs.get(m[3] as string);
    res.writeHead(blob ? 200 : 404);
    return void res.end(blob);
  });
  await new Promise<void>((resolve) => server?.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    host: `127.0.0.1:${port}`,
    manifests,
    blobs,
    requests,
    close: () => new Promise<void>((resolve) => server?.close(() => resolve())),
  };
}
