import { createHash } from "node:crypto";

/** Raw distribution-API calls for tests: every header and status is checked by the caller. */
export function sha256(bytes: Uint8Array | string): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

export async function startUpload(base: string, name: string): Promise<string> {
  const res = await fetch(`${base}/v2/${name}/blobs/uploads/`, { method: "POST" });
  if (res.status !== 202) throw new Error(`POST upload: ${res.status} ${await res.text()}`);
  return new URL(res.headers.get("Location")!, base).toString();
}

/** Pushes a blob with POST, PATCH chunks of `chunkBytes` with Content-Range, and PUT. */
export async function pushBlobChunked(base: string, name: string, data: Uint8Array, chunkBytes: number): Promise<string> {
  let location = await startUpload(base, name);
  for (let at = 0; at < data.length; at += chunkBytes) {
    const chunk = data.subarray(at, Math.min(data.length, at + chunkBytes));
    const res = await fetch(location, {
      method: "PATCH",
      body: chunk,
      headers: { "Content-Type": "application/octet-stream", "Content-Range": `${at}-${at + chunk.length - 1}` },
    });
    if (res.status !== 202) throw new Error(`PATCH at ${at}: ${res.status} ${await res.text()}`);
    location = new URL(res.headers.get("Location")!, base).toString();
  }
  const digest = sha256(data);
  const url = new URL(location);
  url.searchParams.set("digest", digest);
  const res = await fetch(url, { method: "PUT" });
  if (res.status !== 201) throw new Error(`PUT: ${res.status} ${await res.text()}`);
  return digest;
}

export async function pushBlob(base: string, name: string, data: Uint8Array | string): Promise<string> {
  const digest = sha256(data);
  const res = await fetch(`${base}/v2/${name}/blobs/uploads/?digest=${digest}`, {
    method: "POST",
    body: data,
    headers: { "Content-Type": "application/octet-stream" },
  });
  if (res.status !== 201) throw new Error(`monolithic POST: ${res.status} ${await res.text()}`);
  return digest;
}

export async function pushManifest(base: string, name: string, reference: string, manifest: unknown, mediaType: string): Promise<Response> {
  return fetch(`${base}/v2/${name}/manifests/${reference}`, {
    method: "PUT",
    body: typeof manifest === "string" ? manifest : JSON.stringify(manifest),
    headers: { "Content-Type": mediaType },
  });
}

/** A small image (config + layers) pushed by raw HTTP; returns its manifest and digest. */
export async function pushImage(base: string, name: string, tag: string, layers: (string | Uint8Array)[] = ["layer"]) {
  const config = JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] } });
  const configDigest = await pushBlob(base, name, config);
  const layerDescriptors = [];
  for (const layer of layers) {
    const digest = await pushBlob(base, name, layer);
    layerDescriptors.push({ mediaType: "application/vnd.oci.image.layer.v1.tar", digest, size: byteLength(layer) });
  }
  const manifest = {
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: configDigest, size: byteLength(config) },
    layers: layerDescriptors,
  };
  const res = await pushManifest(base, name, tag, manifest, manifest.mediaType);
  if (res.status !== 201) throw new Error(`manifest PUT: ${res.status} ${await res.text()}`);
  const text = JSON.stringify(manifest);
  return { manifest, text, digest: sha256(text), size: byteLength(text) };
}

export function byteLength(value: string | Uint8Array): number {
  return typeof value === "string" ? Buffer.byteLength(value) : value.byteLength;
}

export async function errorCode(res: Response): Promise<string | undefined> {
  const body = (await res.json()) as { errors?: { code: string }[] };
  return body.errors?.[0]?.code;
}
