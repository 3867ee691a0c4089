import http from "node:http";
import { createHash, randomBytes } from "node:crypto";
import { freePort } from "../../src/devcluster/ports.js";

/**
 * A small upstream registry for pull-through tests: real HTTP on a port of its own, serving the
 * images it is given (manifests by tag or digest, blobs), optionally behind the Bearer token flow
 * (a 401 whose challenge names `realm()`), optionally sending blob reads elsewhere by redirect.
 * Every request is recorded with its Authorization header.
 */
export interface FakeImage {
  repository: string;
  tag: string;
  manifest: Buffer;
  manifestDigest: string;
  blobs: Map<string, Buffer>;
}

export interface SeenRequest {
  method: string;
  url: string;
  authorization: string | undefined;
}

export interface FakeServer {
  url: string;
  seen: SeenRequest[];
  close(): Promise<void>;
}

const digestOf = (bytes: Buffer) => `sha256:${createHash("sha256").update(bytes).digest("hex")}`;

/** An image of one random layer of `layerBytes` (and a config), as an OCI manifest. */
export function fakeImage(repository: string, tag: string, layerBytes: number): FakeImage {
  const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] }, nonce: randomBytes(8).toString("hex") }));
  const layer = randomBytes(layerBytes);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: digestOf(config), size: config.length },
      layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: digestOf(layer), size: layer.length }],
    }),
  );
  return { repository, tag, manifest, manifestDigest: digestOf(manifest), blobs: new Map([[digestOf(config), config], [digestOf(layer), layer]]) };
}

export async function listen(host: string, handler: (req: http.IncomingMessage, res: http.ServerResponse) => void): Promise<FakeServer> {
  const port = await freePort();
  const seen: SeenRequest[] = [];
  const server = http.createServer((req, res) => {
    seen.push({ method: req.method ?? "", url: req.url ?? "", authorization: req.headers.authorization });
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  return {
    url: `http://${host}:${port}`,
    seen,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export interface FakeUpstreamOptions {
  images: FakeImage[];
  /** Token auth: requests need `Bearer <token>`; the 401's challenge names this realm. */
  auth?: { token: string; realm: () => string };
  /** Blob reads answer 307 to `<redirect()>/<digest>`. */
  redirectBlobs?: () => string;
}

export function startFakeUpstream(options: FakeUpstreamOptions, host = "127.0.0.1"): Promise<FakeServer> {
  return listen(host, (req, res) => {
    const url = new URL(req.url ?? "/", "http://upstream");
    if (options.auth && req.headers.authorization !== `Bearer ${options.auth.token}`) {
      res.writeHead(401, { "www-authenticate": `Bearer realm="${options.auth.realm()}",service="fake-upstream"` });
      return void res.end();
    }
    const manifest = /^\/v2\/(.+)\/manifests\/([^/]+)$/.exec(url.pathname);
    if (manifest) {
      const image = options.images.find((i) => i.repository === manifest[1] && (i.tag === manifest[2] || i.manifestDigest === manifest[2]));
      if (!image) return void res.writeHead(404).end();
      res.writeHead(200, { "content-type": "application/vnd.oci.image.manifest.v1+json", "content-length": image.manifest.length, "docker-content-digest": image.manifestDigest });
      return void res.end(req.method === "HEAD" ? undefined : image.manifest);
    }
    const blob = /^\/v2\/(.+)\/blobs\/([^/]+)$/.exec(url.pathname);
    const bytes = blob ? options.images.find((i) => i.repository === blob[1])?.blobs.get(blob[2]!) : undefined;
    if (!blob || !bytes) return void res.writeHead(404).end();
    if (options.redirectBlobs) return void res.writeHead(307, { location: `${options.redirectBlobs()}/${blob[2]}` }).end();
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": bytes.length });
    res.end(req.method === "HEAD" ? undefined : bytes);
  });
}

/** Serves blobs by digest at `/<digest>` (a CDN that registries redirect to). */
export function serveBlobs(images: FakeImage[], host: string): Promise<FakeServer> {
  return listen(host, (req, res) => {
    const bytes = images.map((i) => i.blobs.get((req.url ?? "").slice(1))).find((b) => b !== undefined);
    if (!bytes) return void res.writeHead(404).end();
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": bytes.length });
    res.end(bytes);
  });
}
