import { Hono } from "hono";
import { OciError } from "../../shared/oci/errors.js";
import { computeDigest, digestAlgorithm, type Digest } from "../../shared/oci/digest.js";
import { isTag, parseManifestReference } from "../../shared/oci/reference.js";
import { MANIFEST_MAX_BYTES, parseManifest, summarizeManifest, type Descriptor, type ParsedManifest } from "../../shared/oci/manifest.js";
import type { AppEnv } from "../services.js";
import { resolveManifest } from "../upstream/pull-through.js";
import { replicateTag } from "../upstream/replication.js";
import { NAME, repositoryParam } from "./names.js";
import { readBodyCapped } from "./http.js";
import { usageMeter, waitUntilOf } from "../dashboard/usage-meter.js";

/** distribution-spec "Pulling manifests", "Pushing manifests", "Deleting manifests/tags". */
export const manifestRoutes = new Hono<AppEnv>();

manifestRoutes.on(["GET", "HEAD"], `/v2/${NAME}/manifests/:reference`, async (c) => {
  const name = repositoryParam(c.req.param("name"));
  const services = c.get("services");
  const referenceText = c.req.param("reference");
  // distribution-spec conformance: a reference that is neither a digest nor a valid tag names no
  // manifest, so a pull answers 404 (a push of it still gets 400 MANIFEST_INVALID).
  if (!referenceText.includes(":") && !isTag(referenceText)) {
    throw new OciError("MANIFEST_UNKNOWN", `${JSON.stringify(referenceText.slice(0, 150))} is not a valid tag`);
  }
  const stored = await resolveManifest(services, name, referenceText, c.get("identity"));
  const headers = {
    "Content-Type": stored.mediaType,
    "Docker-Content-Digest": stored.digest,
    "Content-Length": String(stored.size),
    ETag: `"${stored.digest}"`,
  };
  if (c.req.method === "HEAD") return c.body(null, 200, headers);
  const bytes = await services.blobs.readBytes(stored.digest as Digest);
  if (!bytes) throw new OciError("MANIFEST_UNKNOWN", `manifest ${stored.digest} is not in storage`);
  // A pull, as the dashboard counts them: a GET of a manifest by tag (counted in memory, reported at most once a second).
  if (!referenceText.includes(":")) {
    usageMeter.pulled(name, referenceText);
    usageMeter.schedule(services, waitUntilOf(c));
  }
  return c.body(bytes, 200, headers);
});

manifestRoutes.put(`/v2/${NAME}/manifests/:reference`, async (c) => {
  const name = repositoryParam(c.req.param("name"));
  const reference = parseManifestReference(c.req.param("reference"));
  const services = c.get("services");
  const bytes = await readBodyCapped(c.req.raw, MANIFEST_MAX_BYTES, () =>
    // distribution-spec: a manifest over the registry's limit SHOULD get 413.
    new OciError("MANIFEST_INVALID", `a manifest may be at most ${MANIFEST_MAX_BYTES} bytes`, {
      status: 413,
      detail: { manifestMaxBytes: MANIFEST_MAX_BYTES },
    }),
  );
  const parsed = parseManifest(bytes, c.req.header("Content-Type"));
  // A manifest pushed by digest is addressed with that digest's algorithm; by tag, with sha256.
  const digest = await computeDigest(bytes, reference.kind === "digest" ? digestAlgorithm(reference.digest) : "sha256");
  if (reference.kind === "digest" && reference.digest !== digest) {
    throw new OciError("DIGEST_INVALID", `manifest has digest ${digest}, not ${reference.digest}`);
  }
  const repository = services.repository(name);
  const required = requiredBlobs(parsed);
  const children = parsed.kind === "index" ? parsed.manifest.manifests.map((d) => d.digest) : [];
  const missing = [...(await repository.missingBlobs(required)), ...(await repository.missingManifests(children))];
  if (missing.length > 0) {
    throw new OciError("MANIFEST_BLOB_UNKNOWN", `manifest references ${missing.length} unknown blob(s) or manifest(s): ${missing.slice(0, 3).join(", ")}`, {
      detail: { missing: missing.slice(0, 50) },
    });
  }
  if (!(await services.blobs.stat(digest))) {
    if (!(await services.blobs.putVerified(digest, bytes, bytes.byteLength))) {
      throw new Error(`storage refused manifest ${digest}`);
    }
  }
  const summary = summarizeManifest(parsed);
  const put = await repository.putManifest({
    repository: name,
    digest,
    size: bytes.byteLength,
    summary,
    // Checked again as the row is written: a garbage collection may have unlinked them since.
    requires: [...required, ...children],
    ...(reference.kind === "tag" ? { tag: reference.tag } : {}),
  });
  if (!put.stored) {
    throw new OciError("MANIFEST_BLOB_UNKNOWN", `manifest references blob(s) garbage-collected while it was pushed: ${put.missing.slice(0, 3).join(", ")}`, {
      detail: { missing: put.missing.slice(0, 50) },
    });
  }
  const headers: Record<string, string> = {
    Location: `/v2/${name}/manifests/${digest}`,
    "Docker-Content-Digest": digest,
    "Content-Length": "0",
  };
  if (reference.kind === "tag") {
    // The dashboard's list of pushes is a convenience: the tag is stored whatever becomes of it.
    await services.catalog().recordPush({ repository: name, tag: reference.tag, digest, size: bytes.byteLength, blobs: imageBlobs(parsed) }).catch(() => undefined);
    await replicateTag(services, name, reference.tag, digest);
  }
  // distribution-spec: a registry that processes `subject` says so with OCI-Subject.
  if (summary.subject) headers["OCI-Subject"] = summary.subject;
  return c.body(null, 201, headers);
});

manifestRoutes.delete(`/v2/${NAME}/manifests/:reference`, async (c) => {
  const name = repositoryParam(c.req.param("name"));
  const reference = parseManifestReference(c.req.param("reference"));
  const repository = c.get("services").repository(name);
  if (reference.kind === "tag") {
    if (!(await repository.deleteTag(reference.tag))) throw new OciError("MANIFEST_UNKNOWN", `tag ${reference.tag} is not in ${name}`);
  } else if (!(await repository.deleteManifest(reference.digest))) {
    throw new OciError("MANIFEST_UNKNOWN", `manifest ${reference.digest} is not in ${name}`);
  }
  return c.body(null, 202);
});

/**
 * Blobs a manifest needs the registry to hold: config and layers, except non-distributable layers
 * that name external URLs (image-spec: such layers may be absent from the registry).
 */
function requiredBlobs(parsed: ParsedManifest): string[] {
  if (parsed.kind !== "image") return [];
  const external = (d: Descriptor) => (d.urls?.length ?? 0) > 0 && /nondistributable|foreign/.test(d.mediaType);
  return [parsed.manifest.config, ...parsed.manifest.layers].filter((d) => !external(d)).map((d) => d.digest);
}

/** An image manifest's config and layers as the dashboard names them (none for an index). */
function imageBlobs(parsed: ParsedManifest): { digest: string; part: string; size: number }[] {
  if (parsed.kind !== "image") return [];
  const { config, layers } = parsed.manifest;
  return [{ digest: config.digest, part: "config", size: config.size }, ...layers.map((l, i) => ({ digest: l.digest, part: `layer ${i + 1} of ${layers.length}`, size: l.size }))];
}
