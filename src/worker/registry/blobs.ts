import { Hono } from "hono";
import { OciError } from "../../shared/oci/errors.js";
import { contentRange, parseRangeHeader } from "../../shared/oci/range.js";
import type { AppEnv } from "../services.js";
import { NAME, digestParam, repositoryParam } from "./names.js";
import { ensureBlob } from "../upstream/pull-through.js";
import { usageMeter, waitUntilOf } from "../dashboard/usage-meter.js";

/** distribution-spec "Pulling blobs", "Deleting blobs". */
export const blobRoutes = new Hono<AppEnv>();

blobRoutes.on(["GET", "HEAD"], `/v2/${NAME}/blobs/:digest`, async (c) => {
  const name = repositoryParam(c.req.param("name"));
  const digest = digestParam(c.req.param("digest"));
  const services = c.get("services");
  // Linked in the repository, or fetched now from its upstream (pull-through).
  const linked = await ensureBlob(services, name, digest, c.get("identity"));
  if (linked === null) throw new OciError("BLOB_UNKNOWN", `blob ${digest} is not in ${name}`);
  const info = await services.blobs.stat(digest);
  if (!info) throw new OciError("BLOB_UNKNOWN", `blob ${digest} is not in storage`);

  const headers: Record<string, string> = {
    "Docker-Content-Digest": digest,
    "Content-Type": "application/octet-stream",
    "Accept-Ranges": "bytes",
    ETag: `"${digest}"`,
    "Cache-Control": "public, max-age=31536000, immutable",
  };
  const ranged = parseRangeHeader(c.req.header("Range"), info.size);
  if (ranged.kind === "unsatisfiable") {
    return c.body(null, 416, { ...headers, "Content-Range": `bytes */${info.size}` });
  }
  const range = ranged.kind === "satisfiable" ? ranged.range : undefined;
  const length = range ? range.end - range.start + 1 : info.size;
  const status = range ? 206 : 200;
  if (range) headers["Content-Range"] = contentRange(range, info.size);
  headers["Content-Length"] = String(length);
  if (c.req.method === "HEAD") return c.body(null, status, headers);
  // An empty body as bytes: an empty stream would lose Content-Length: 0.
  if (length === 0) return c.body(new Uint8Array(0), status, headers);

  const read = await services.blobs.read(digest, range, info);
  if (!read) throw new OciError("BLOB_UNKNOWN", `blob ${digest} is not in storage`);
  // The dashboard's throughput: counted as the read starts, reported at most once a second.
  usageMeter.served(length);
  usageMeter.schedule(services, waitUntilOf(c));
  return c.body(read.body, status, headers);
});

blobRoutes.delete(`/v2/${NAME}/blobs/:digest`, async (c) => {
  const name = repositoryParam(c.req.param("name"));
  const digest = digestParam(c.req.param("digest"));
  // Unlinks the blob from this repository; the bytes stay while other repositories may hold them.
  const removed = await c.get("services").repository(name).unlinkBlob(digest);
  if (!removed) throw new OciError("BLOB_UNKNOWN", `blob ${digest} is not in ${name}`);
  return c.body(null, 202, { "Docker-Content-Digest": digest });
});
