import { createHash } from "node:crypto";
import { request } from "undici";

/**
 * A chunked blob upload by the distribution API (POST, PATCH with Content-Range, PUT ?digest=),
 * the same way against Shoal's edge and against distribution: a chunk must fit the edge's limit.
 */
export const pushChunked = {
  async start(base: string, name: string, headers: Record<string, string> = {}) {
    const started = await request(`${base}/v2/${name}/blobs/uploads/`, { method: "POST", headers });
    await started.body.dump();
    if (started.statusCode !== 202) throw new Error(`POST ${base}: ${started.statusCode}`);
    let location = new URL(String(started.headers.location), base).toString();
    let offset = 0;
    return {
      async append(chunk: Uint8Array): Promise<void> {
        const res = await request(location, {
          method: "PATCH",
          body: chunk,
          headers: { ...headers, "content-type": "application/octet-stream", "content-range": `${offset}-${offset + chunk.length - 1}`, "content-length": String(chunk.length) },
        });
        const text = await res.body.text();
        if (res.statusCode !== 202) throw new Error(`PATCH ${base} at ${offset}: ${res.statusCode} ${text.slice(0, 300)}`);
        offset += chunk.length;
        location = new URL(String(res.headers.location), base).toString();
      },
      async finish(digest: string): Promise<void> {
        const url = new URL(location);
        url.searchParams.set("digest", digest);
        const res = await request(url, { method: "PUT", headers: { ...headers, "content-length": "0" } });
        const text = await res.body.text();
        if (res.statusCode !== 201) throw new Error(`PUT ${base}: ${res.statusCode} ${text.slice(0, 300)}`);
      },
    };
  },
};

/** Pushes an image with one layer (`layer`, pushed in chunks of at most 64 MiB) to a registry. */
export async function pushOneLayerImage(base: string, name: string, tag: string, layer: Buffer): Promise<{ configDigest: string; layerDigest: string; manifestDigest: string }> {
  const sha = (b: Uint8Array | string) => `sha256:${createHash("sha256").update(b).digest("hex")}`;
  const pushBlob = async (bytes: Buffer) => {
    const upload = await pushChunked.start(base, name);
    for (let at = 0; at < bytes.length; at += PUSH_CHUNK_BYTES) await upload.append(bytes.subarray(at, Math.min(bytes.length, at + PUSH_CHUNK_BYTES)));
    const digest = sha(bytes);
    await upload.finish(digest);
    return digest;
  };
  const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] } }));
  const configDigest = await pushBlob(config);
  const layerDigest = await pushBlob(layer);
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: configDigest, size: config.length },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: layerDigest, size: layer.length }],
  });
  const res = await request(`${base}/v2/${name}/manifests/${tag}`, {
    method: "PUT",
    body: manifest,
    headers: { "content-type": "application/vnd.oci.image.manifest.v1+json" },
  });
  const text = await res.body.text();
  if (res.statusCode !== 201) throw new Error(`manifest PUT ${base}: ${res.statusCode} ${text.slice(0, 300)}`);
  return { configDigest, layerDigest, manifestDigest: sha(manifest) };
}

const PUSH_CHUNK_BYTES = 64 * 1024 * 1024;
