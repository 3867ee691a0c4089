import { Hono } from "hono";
import { OciError } from "../../shared/oci/errors.js";
import { MEDIA_TYPE } from "../../shared/oci/media-types.js";
import type { AppEnv, Services } from "../services.js";
import type { Digest } from "../../shared/oci/digest.js";
import { NAME, digestParam, repositoryParam } from "./names.js";
import { nextPageLink, parsePageQuery } from "./http.js";

/** distribution-spec "Listing Tags", "Listing Referrers", and the catalog extension. */
export const listingRoutes = new Hono<AppEnv>();

listingRoutes.get(`/v2/${NAME}/tags/list`, async (c) => {
  const name = repositoryParam(c.req.param("name"));
  const query = parsePageQuery(c.req.query(), "UNSUPPORTED");
  const repository = c.get("services").repository(name);
  if (!(await repository.known())) throw new OciError("NAME_UNKNOWN", `repository ${name} is not known`);
  // distribution-spec: n=0 returns an empty list and no Link.
  const page = query.limit === 0 ? { items: [], more: false } : await repository.listTags(query.limit, query.last);
  const link = nextPageLink(`/v2/${name}/tags/list`, page, query);
  if (link) c.header("Link", link);
  return c.json({ name, tags: page.items });
});

listingRoutes.get("/v2/_catalog", async (c) => {
  const query = parsePageQuery(c.req.query(), "UNSUPPORTED");
  const page = query.limit === 0 ? { items: [], more: false } : await c.get("services").catalog().list(query.limit, query.last);
  const link = nextPageLink("/v2/_catalog", page, query);
  if (link) c.header("Link", link);
  return c.json({ repositories: page.items });
});

listingRoutes.get(`/v2/${NAME}/referrers/:digest`, async (c) => {
  const name = repositoryParam(c.req.param("name"));
  const subject = digestParam(c.req.param("digest"));
  const artifactType = c.req.query("artifactType") ?? null;
  const services = c.get("services");
  const rows = await services.repository(name).referrers(subject, artifactType);
  const manifests = [];
  for (const r of rows) {
    const annotations = r.annotationsInManifest ? await annotationsFromManifest(services, r.digest) : r.annotations;
    manifests.push({
      mediaType: r.mediaType,
      digest: r.digest,
      size: r.size,
      ...(r.artifactType ? { artifactType: r.artifactType } : {}),
      ...(annotations ? { annotations } : {}),
    });
  }
  // distribution-spec: an index of referrer descriptors, 200 even when there are none.
  const body = { schemaVersion: 2, mediaType: MEDIA_TYPE.OCI_INDEX, manifests };
  if (artifactType !== null) c.header("OCI-Filters-Applied", "artifactType");
  return c.body(JSON.stringify(body), 200, { "Content-Type": MEDIA_TYPE.OCI_INDEX });
});

async function annotationsFromManifest(services: Services, digest: string): Promise<Record<string, string> | undefined> {
  const bytes = await services.blobs.readBytes(digest as Digest);
  if (!bytes) return undefined;
  return (JSON.parse(new TextDecoder().decode(bytes)) as { annotations?: Record<string, string> }).annotations;
}
