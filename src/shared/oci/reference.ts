import { OciError } from "./errors.js";
import { isDigest, parseDigest, type Digest } from "./digest.js";

/** distribution-spec §"Pulling manifests": `<name>` must match this expression. */
export const REPOSITORY_NAME = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
/** distribution-spec: `<reference>` as a tag. */
export const TAG = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
/** Many clients cannot handle longer names (distribution-spec: hostname + name under 255 chars). */
export const REPOSITORY_NAME_MAX_LENGTH = 255;

export function isRepositoryName(name: string): boolean {
  return name.length <= REPOSITORY_NAME_MAX_LENGTH && REPOSITORY_NAME.test(name);
}

export function parseRepositoryName(name: string): string {
  if (!isRepositoryName(name)) {
    throw new OciError("NAME_INVALID", `invalid repository name ${JSON.stringify(name.slice(0, 300))}`, {
      detail: { name: name.slice(0, 300), rule: REPOSITORY_NAME.source },
    });
  }
  return name;
}

export function isTag(value: string): boolean {
  return TAG.test(value);
}

export type ManifestReference = { kind: "tag"; tag: string } | { kind: "digest"; digest: Digest };

/** A manifest `<reference>`: a digest (anything with a colon) or a tag. */
export function parseManifestReference(value: string): ManifestReference {
  if (value.includes(":") || isDigest(value)) {
    try {
      return { kind: "digest", digest: parseDigest(value) };
    } catch {
      throw new OciError("MANIFEST_INVALID", `invalid manifest reference ${JSON.stringify(value.slice(0, 150))}`, {
        status: 400,
      });
    }
  }
  if (!isTag(value)) {
    throw new OciError("MANIFEST_INVALID", `invalid tag ${JSON.stringify(value.slice(0, 150))}`, {
      detail: { rule: TAG.source },
    });
  }
  return { kind: "tag", tag: value };
}

/** An image reference as a user types it: `[host[:port]/]name(:tag|@digest)`. */
export interface ImageReference {
  /** The registry host, when the first path component names one (has a dot or a port, or is localhost). */
  host?: string;
  name: string;
  reference: ManifestReference;
}

/**
 * Parses `localhost:16000/demo/app:v1`, `demo/app@sha256:…` or `demo/app` (tag `latest`), the way
 * docker splits a host from a repository name. Throws an OciError (NAME_INVALID, MANIFEST_INVALID)
 * with the reason.
 */
export function parseImageReference(text: string): ImageReference {
  let rest = text.trim();
  let host: string | undefined;
  const slash = rest.indexOf("/");
  if (slash > 0) {
    const first = rest.slice(0, slash);
    if (first.includes(".") || first.includes(":") || first === "localhost") {
      host = first;
      rest = rest.slice(slash + 1);
    }
  }
  let name: string;
  let reference: ManifestReference;
  const at = rest.indexOf("@");
  if (at >= 0) {
    name = rest.slice(0, at);
    const digest = rest.slice(at + 1);
    reference = parseManifestReference(digest);
    if (reference.kind !== "digest") throw new OciError("MANIFEST_INVALID", `invalid digest ${JSON.stringify(digest.slice(0, 150))}`);
  } else {
    const colon = rest.lastIndexOf(":");
    name = colon > 0 ? rest.slice(0, colon) : rest;
    reference = parseManifestReference(colon > 0 ? rest.slice(colon + 1) : "latest");
  }
  return { ...(host ? { host } : {}), name: parseRepositoryName(name), reference };
}

export function formatManifestReference(reference: ManifestReference): string {
  return reference.kind === "tag" ? reference.tag : reference.digest;
}
