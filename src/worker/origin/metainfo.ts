import { Hono } from "hono";
import { OciError } from "../../shared/oci/errors.js";
import type { Digest } from "../../shared/oci/digest.js";
import { buildMetainfo, type Metainfo } from "../../shared/p2p/metainfo.js";
import { BlockHasher } from "./block-hasher.js";
import type { BlobStore } from "../storage/blob-store.js";
import { MetainfoStore } from "../storage/metainfo-store.js";
import type { AppEnv } from "../services.js";
import { NAME, digestParam, repositoryParam } from "../registry/names.js";
import { ensureBlob } from "../upstream/pull-through.js";

/**
 * Metainfo for a blob. Chunked uploads compute it on the way in; blobs that arrived another way
 * (a monolithic POST, a manifest) get it computed here once, from one read, and stored.
 */
export async function metainfoFor(store: MetainfoStore, blobs: BlobStore, digest: Digest): Promise<Metainfo | null> {
  const existing = await store.get(digest);
  if (existing) return existing;
  const read = await blobs.read(digest);
  if (!read) return null;
  const hasher = new BlockHasher();
  await hasher.consume(read.body);
  const blocks = await hasher.finish();
  const metainfo = await buildMetainfo(digest, read.info.size, blocks);
  await store.put(metainfo);
  return metainfo;
}

export const metainfoRoutes = new Hono<AppEnv>();

/** `GET /shoal/v1/<name>/metainfo/<digest>`: only for blobs the repository holds. */
metainfoRoutes.get(`/shoal/v1/${NAME}/metainfo/:digest`, async (c) => {
  const name = repositoryParam(c.req.param("name"));
  const digest = digestParam(c.req.param("digest"));
  const services = c.get("services");
  if ((await ensureBlob(services, name, digest, c.get("identity"))) === null) throw new OciError("BLOB_UNKNOWN", `blob ${digest} is not in ${name}`);
  const metainfo = await metainfoFor(services.metainfo, services.blobs, digest);
  if (!metainfo) throw new OciError("BLOB_UNKNOWN", `blob ${digest} is not in storage`);
  return c.json(metainfo, 200, { "Cache-Control": "public, max-age=31536000, immutable" });
});
