import { OciError } from "../../shared/oci/errors.js";
import { computeDigest, digestAlgorithm, type Digest } from "../../shared/oci/digest.js";
import { MANIFEST_MEDIA_TYPES } from "../../shared/oci/media-types.js";
import { MANIFEST_MAX_BYTES, parseManifest, summarizeManifest } from "../../shared/oci/manifest.js";
import { parseManifestReference } from "../../shared/oci/reference.js";
import type { StoredManifest } from "../build-index/repository-index.js";
import type { Services } from "../services.js";
import { remoteFor, type Remote } from "./config.js";
import { RegistryClient, UpstreamError, reach } from "./registry-client.js";
import { linkBlob } from "../gc/interlock.js";
import { accountOf, type Identity } from "../auth.js";

/**
 * Pull-through: a repository under a prefix of `SHOAL_UPSTREAMS` is filled from its upstream on
 * demand. A manifest the edge does not have (or a tag older than the upstream's `tagTtlSeconds`) is
 * asked of the upstream, verified against its digest and stored as if pushed; a blob is fetched once,
 * stored only if its digest matches, and from then on served — to agents and so to their peers —
 * without the upstream. When the upstream is down, a tag already resolved is served as it was.
 *
 * What a reader without an account makes the edge store (a fill: content the edge does not have
 * yet) counts against `SHOAL_UPSTREAM_ANONYMOUS_BYTES_PER_DAY` (fill-budget.ts); past it, such a
 * fill is refused with 429 TOOMANYREQUESTS before a byte is stored, while what is stored is served
 * to anyone as before. Refused, not passed through unstored: a pass-through would still spend the
 * upstream's bandwidth and rate limit (and the credentials configured for it) for strangers without
 * bound, and agents need the blob at the edge anyway (metainfo, web-seed ranges).
 */
const clients = new Map<string, RegistryClient>();

function clientFor(remote: Remote): RegistryClient {
  let client = clients.get(remote.prefix + remote.url);
  if (!client) {
    client = new RegistryClient(remote);
    clients.set(remote.prefix + remote.url, client);
  }
  return client;
}

/** A repository's manifest by tag or digest, from the index, else (pull-through) its upstream. */
export async function resolveManifest(services: Services, name: string, referenceText: string, requester: Identity | undefined): Promise<StoredManifest> {
  const reference = parseManifestReference(referenceText);
  const repository = services.repository(name);
  const stored = reference.kind === "tag" ? await repository.manifestByTag(reference.tag) : await repository.manifestByDigest(reference.digest);
  const what = reference.kind === "tag" ? `tag ${reference.tag}` : `manifest ${reference.digest}`;
  const upstream = remoteFor(services.settings.upstreams, name);
  if (!upstream) {
    if (!stored) throw new OciError("MANIFEST_UNKNOWN", `${what} is not in ${name}`);
    return stored;
  }
  if (stored && reference.kind === "digest") return stored; // content never changes
  if (stored && reference.kind === "tag") {
    const resolvedAt = await repository.tagUpdatedAt(reference.tag);
    if (resolvedAt !== null && Date.now() - resolvedAt < upstream.remote.tagTtlSeconds * 1000) return stored;
  }
  try {
    return await fetchManifest(services, name, upstream, referenceText, requester);
  } catch (error) {
    if (stored && error instanceof UpstreamError && error.status === 503) {
      console.log(JSON.stringify({ level: "warn", msg: "upstream unavailable: serving the tag as last resolved", repository: name, reference: referenceText, error: error.message }));
      return stored;
    }
    throw asOciError(error);
  }
}

async function fetchManifest(services: Services, name: string, upstream: { remote: Remote; name: string }, reference: string, requester: Identity | undefined): Promise<StoredManifest> {
  const client = clientFor(upstream.remote);
  const where = `${upstream.remote.url}/v2/${upstream.name}/manifests/${reference}`;
  const res = await reach(
    () => client.request(`/v2/${upstream.name}/manifests/${reference}`, { headers: { Accept: MANIFEST_MEDIA_TYPES.join(", ") }, scope: `repository:${upstream.name}:pull` }),
    `upstream ${where}`,
  );
  if (res.status === 404) {
    await res.body?.cancel();
    throw new OciError("MANIFEST_UNKNOWN", `${reference} is not in ${name} nor at its upstream ${upstream.remote.url}`);
  }
  if (!res.ok) {
    await res.body?.cancel();
    throw new UpstreamError(`upstream ${where} answered ${res.status}`, res.status === 401 || res.status === 403 ? 401 : 502);
  }
  const declared = Number(res.headers.get("content-length") ?? "0");
  if (declared > MANIFEST_MAX_BYTES) throw new UpstreamError(`upstream manifest ${where} is over ${MANIFEST_MAX_BYTES} bytes`);
  const bytes = new Uint8Array(await res.arrayBuffer());
  if (bytes.byteLength > MANIFEST_MAX_BYTES) throw new UpstreamError(`upstream manifest ${where} is over ${MANIFEST_MAX_BYTES} bytes`);
  const parsed = parseManifest(bytes, res.headers.get("content-type"));
  const ref = parseManifestReference(reference);
  const digest = await computeDigest(bytes, ref.kind === "digest" ? digestAlgorithm(ref.digest) : "sha256");
  if (ref.kind === "digest" && digest !== ref.digest) throw new UpstreamError(`upstream sent a manifest hashing to ${digest} for ${ref.digest}`);
  const claimed = res.headers.get("docker-content-digest");
  if (ref.kind === "tag" && claimed && claimed.startsWith("sha256:") && claimed !== digest) {
    throw new UpstreamError(`upstream sent a manifest hashing to ${digest}, announced as ${claimed}`);
  }
  if (!(await services.blobs.stat(digest))) {
    const refund = await reserveFill(services, requester, bytes.byteLength, `manifest ${digest} of ${name}`);
    const stored = await services.blobs.putVerified(digest, bytes, bytes.byteLength).catch(async (error: unknown) => {
      await refund?.();
      throw error;
    });
    if (!stored) {
      await refund?.();
      throw new Error(`storage refused manifest ${digest}`);
    }
  }
  const put = await services.repository(name).putManifest({
    repository: name,
    digest,
    size: bytes.byteLength,
    summary: summarizeManifest(parsed),
    ...(ref.kind === "tag" ? { tag: ref.tag } : {}),
  });
  if (!put.stored) throw new OciError("MANIFEST_UNKNOWN", `manifest ${digest} was being garbage-collected; pull again`, { status: 503 });
  return { digest, mediaType: parsed.mediaType, size: bytes.byteLength };
}

/**
 * Makes sure a blob is linked in the repository, fetching it from the upstream when the repository
 * has one. Returns its size, or null when neither has it.
 */
export async function ensureBlob(services: Services, name: string, digest: Digest, requester: Identity | undefined): Promise<number | null> {
  const repository = services.repository(name);
  const linked = await repository.blobSize(digest);
  if (linked !== null) return linked;
  const upstream = remoteFor(services.settings.upstreams, name);
  if (!upstream) return null;
  const stored = await services.blobs.stat(digest);
  if (stored) {
    // Already here through another repository (content-addressed and verified): link it.
    await linkBlob(services, name, digest, stored.size);
    return stored.size;
  }
  const where = `${upstream.remote.url}/v2/${upstream.name}/blobs/${digest}`;
  const client = clientFor(upstream.remote);
  try {
    const res = await reach(() => client.request(`/v2/${upstream.name}/blobs/${digest}`, { scope: `repository:${upstream.name}:pull` }), `upstream ${where}`);
    if (res.status === 404) {
      await res.body?.cancel();
      return null;
    }
    const size = Number(res.headers.get("content-length"));
    if (!res.ok || !res.body || !Number.isSafeInteger(size)) {
      await res.body?.cancel();
      throw new UpstreamError(`upstream ${where} answered ${res.status}${res.ok ? " without a Content-Length" : ""}`);
    }
    let refund: (() => Promise<void>) | undefined;
    try {
      refund = await reserveFill(services, requester, size, `blob ${digest} of ${name}`);
    } catch (error) {
      await res.body.cancel();
      throw error;
    }
    // Storage checks the digest as the bytes arrive: a wrong blob is never stored.
    const stored = await services.blobs.putVerified(digest, res.body, size).catch(async (error: unknown) => {
      await refund?.();
      throw error;
    });
    if (!stored) {
      await refund?.();
      throw new UpstreamError(`upstream ${where} sent bytes that do not match the digest`);
    }
    await linkBlob(services, name, digest, size);
    return size;
  } catch (error) {
    throw asOciError(error);
  }
}

/**
 * Reserves `bytes` of the anonymous fill budget when the requester has no account (no credentials,
 * or an anonymous token); returns how to give them back if the fill then stores nothing.
 */
async function reserveFill(services: Services, requester: Identity | undefined, bytes: number, what: string): Promise<(() => Promise<void>) | undefined> {
  if (requester && accountOf(requester)) return undefined;
  const limit = services.settings.upstreamAnonymousBytesPerDay;
  const budget = services.fillBudget();
  const grant = await budget.reserve(bytes, limit, Date.now());
  if (grant.granted) return () => budget.refund(bytes, grant.hour);
  const retryAfter = Number.isFinite(grant.freesAt) ? Math.max(1, Math.ceil((grant.freesAt - Date.now()) / 1000)) : undefined;
  const why =
    limit === 0
      ? "pull-through is off for anonymous readers (SHOAL_UPSTREAM_ANONYMOUS_BYTES_PER_DAY=0)"
      : `anonymous pull-through has stored ${grant.usedBytes} of its ${limit} bytes for 24 hours (SHOAL_UPSTREAM_ANONYMOUS_BYTES_PER_DAY)`;
  throw new OciError("TOOMANYREQUESTS", `${why}: ${what} (${bytes} bytes) is not at the edge yet; pull it with credentials (docker login)${retryAfter ? ", or try again later" : ""}`, {
    ...(retryAfter ? { headers: { "Retry-After": String(retryAfter) } } : {}),
  });
}

function asOciError(error: unknown): unknown {
  if (!(error instanceof UpstreamError)) return error;
  if (error.status === 401) return new OciError("UNKNOWN", `${error.message} (check the upstream's credentials in SHOAL_UPSTREAMS)`, { status: 502 });
  return new OciError("UNKNOWN", error.message, { status: error.status === 503 ? 503 : 502 });
}
