import { OciError } from "../../shared/oci/errors.js";
import { parseDigest, type Digest } from "../../shared/oci/digest.js";
import { parseRepositoryName } from "../../shared/oci/reference.js";

/**
 * Route patterns. A repository name has slashes, so it is matched greedily up to the resource
 * segment; the name is then held to the spec's grammar, which has no `.`-only or empty components,
 * so no name can reach outside its repository.
 */
export const NAME = ":name{.+}";

export function repositoryParam(name: string | undefined): string {
  return parseRepositoryName(name ?? "");
}

export function digestParam(value: string | undefined): Digest {
  return parseDigest(value ?? "");
}

const UPLOAD_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function uploadIdParam(value: string | undefined): string {
  if (!value || !UPLOAD_ID.test(value)) throw new OciError("BLOB_UPLOAD_UNKNOWN", "unknown upload id");
  return value;
}
