import { Hono, type Context } from "hono";
import { z } from "zod";
import { OciError } from "../../shared/oci/errors.js";
import { parseDigest, type Digest } from "../../shared/oci/digest.js";
import { isRepositoryName } from "../../shared/oci/reference.js";
import { parseChunkRange, uploadRangeHeader, type ByteRange } from "../../shared/oci/range.js";
import { uploadLocation } from "../upload/upload-session.js";
import { unwrap } from "../upload/rpc-result.js";
import type { AppEnv } from "../services.js";
import { NAME, repositoryParam, uploadIdParam } from "./names.js";
import { linkBlob } from "../gc/interlock.js";

/** distribution-spec "Pushing blobs": POST/PATCH/PUT/GET/DELETE on uploads, and mounts. */
export const uploadRoutes = new Hono<AppEnv>();

const StartQuerySchema = z.object({
  digest: z.string().optional(),
  mount: z.string().optional(),
  from: z.string().optional(),
});

uploadRoutes.post(`/v2/${NAME}/blobs/uploads/`, async (c) => {
  const name = repositoryParam(c.req.param("name"));
  const query = StartQuerySchema.parse(c.req.query());
  const services = c.get("services");

  if (query.mount !== undefined) {
    const digest = parseDigest(query.mount);
    if (query.from !== undefined && isRepositoryName(query.from)) {
      const size = await services.repository(query.from).blobSize(digest);
      if (size !== null && (await services.blobs.stat(digest))) {
        await linkBlob(services, name, digest, size);
        return created(c, name, digest);
      }
    }
    // Unknown source: distribution-spec says open an ordinary upload session (202).
  } else if (query.digest !== undefined) {
    return monolithicUpload(c, name, parseDigest(query.digest));
  }
  return startSession(c, name);
});

uploadRoutes.patch(`/v2/${NAME}/blobs/uploads/:id`, async (c) => {
  const name = repositoryParam(c.req.param("name"));
  const id = uploadIdParam(c.req.param("id"));
  const limit = checkDeclaredLength(c);
  const range = chunkRange(c.req.header("Content-Range"));
  const status = unwrap(
    await c.get("services").upload(id).append({ repository: name, body: c.req.raw.body, range, limit }),
  );
  return c.body(null, 202, uploadHeaders(c, { id, repository: name }, status.offset));
});

uploadRoutes.put(`/v2/${NAME}/blobs/uploads/:id`, async (c) => {
  const name = repositoryParam(c.req.param("name"));
  const id = uploadIdParam(c.req.param("id"));
  const digestText = c.req.query("digest");
  if (!digestText) throw new OciError("DIGEST_INVALID", "closing an upload needs ?digest=");
  const digest = parseDigest(digestText);
  const limit = checkDeclaredLength(c);
  const range = chunkRange(c.req.header("Content-Range"));
  const services = c.get("services");
  const declared = Number(c.req.header("Content-Length") ?? 0);
  if (range === null && declared > 0 && c.req.raw.body && unwrap(await services.upload(id).status(name)).offset === 0) {
    // The whole blob in this one request (POST, then PUT with the body: docker's small layers,
    // curl): stored as one object that storage verifies natively, like a monolithic POST, instead
    // of through multipart parts. The empty session is closed.
    const stored = (await services.blobs.stat(digest)) !== null || (await services.blobs.putVerified(digest, c.req.raw.body, declared));
    unwrap(await services.upload(id).cancel(name));
    if (!stored) throw new OciError("DIGEST_INVALID", `uploaded content does not match ${digest}`);
    await services.repository(name).linkBlob(name, digest, declared);
    return created(c, name, digest);
  }
  const blob = unwrap(
    await services.upload(id).finish({ repository: name, body: c.req.raw.body, range, limit, digest }),
  );
  await linkBlob(services, name, blob.digest, blob.size);
  return created(c, name, blob.digest);
});

uploadRoutes.get(`/v2/${NAME}/blobs/uploads/:id`, async (c) => {
  const name = repositoryParam(c.req.param("name"));
  const id = uploadIdParam(c.req.param("id"));
  const status = unwrap(await c.get("services").upload(id).status(name));
  return c.body(null, 204, uploadHeaders(c, { id, repository: name }, status.offset));
});

uploadRoutes.delete(`/v2/${NAME}/blobs/uploads/:id`, async (c) => {
  const name = repositoryParam(c.req.param("name"));
  const id = uploadIdParam(c.req.param("id"));
  unwrap(await c.get("services").upload(id).cancel(name));
  return c.body(null, 204);
});

async function startSession(c: Context<AppEnv>, name: string): Promise<Response> {
  const id = crypto.randomUUID();
  const status = await c.get("services").upload(id).start(id, name);
  return c.body(null, 202, uploadHeaders(c, { id, repository: name }, status.offset));
}

/** `POST ?digest=` with the whole blob as the body (distribution-spec "single POST"). */
async function monolithicUpload(c: Context<AppEnv>, name: string, digest: Digest): Promise<Response> {
  const services = c.get("services");
  const limit = checkDeclaredLength(c);
  const declared = c.req.header("Content-Length");
  const existing = await services.blobs.stat(digest);
  if (existing) {
    await c.req.raw.body?.cancel();
    await linkBlob(services, name, digest, existing.size);
    return created(c, name, digest);
  }
  if (declared !== undefined) {
    const size = Number(declared);
    const body = c.req.raw.body ?? new Uint8Array(0);
    if (!(await services.blobs.putVerified(digest, body, size))) {
      throw new OciError("DIGEST_INVALID", `uploaded content does not match ${digest}`);
    }
    await linkBlob(services, name, digest, size);
    return created(c, name, digest);
  }
  // Streamed without a length: through an upload session, which counts and hashes as it goes.
  const id = crypto.randomUUID();
  const upload = services.upload(id);
  await upload.start(id, name);
  const blob = unwrap(await upload.finish({ repository: name, body: c.req.raw.body, range: null, limit, digest }));
  await linkBlob(services, name, blob.digest, blob.size);
  return created(c, name, blob.digest);
}

function created(c: Context<AppEnv>, name: string, digest: string): Response {
  return c.body(null, 201, {
    Location: `/v2/${name}/blobs/${digest}`,
    "Docker-Content-Digest": digest,
    "Content-Length": "0",
  });
}

function uploadHeaders(c: Context<AppEnv>, upload: { id: string; repository: string }, offset: number): Record<string, string> {
  return {
    Location: uploadLocation(upload),
    Range: uploadRangeHeader(offset),
    "Docker-Upload-UUID": upload.id,
    "OCI-Chunk-Max-Length": String(c.get("services").settings.chunkMaxBytes),
    "Content-Length": "0",
  };
}

/** Refuses a body the edge's limit cannot take before a byte of it is read (Workers would cut it). */
function checkDeclaredLength(c: Context<AppEnv>): number {
  const limit = c.get("services").settings.chunkMaxBytes;
  const declared = c.req.header("Content-Length");
  if (declared !== undefined) {
    const size = Number(declared);
    if (!Number.isSafeInteger(size) || size < 0) throw new OciError("SIZE_INVALID", "invalid Content-Length");
    if (size > limit) {
      throw new OciError("SIZE_INVALID", `a request may carry at most ${limit} bytes; send the blob in smaller PATCH chunks`, {
        status: 413,
        detail: { chunkMaxBytes: limit, contentLength: size },
        headers: { "OCI-Chunk-Max-Length": String(limit) },
      });
    }
  }
  return limit;
}

function chunkRange(header: string | undefined): ByteRange | null {
  if (header === undefined) return null;
  const range = parseChunkRange(header);
  if (!range) throw new OciError("BLOB_UPLOAD_INVALID", `invalid Content-Range ${JSON.stringify(header.slice(0, 100))}`, { status: 416 });
  return range;
}
