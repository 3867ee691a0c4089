import { OciError } from "../../shared/oci/errors.js";
import type { Services } from "../services.js";

/**
 * Links a blob into a repository for a route, or refuses the request when a collection has
 * claimed the blob for deletion since the route found it stored (see gc/ledger.ts): the client
 * pushes it again, and this time it is stored anew.
 */
export async function linkBlob(services: Services, repository: string, digest: string, size: number): Promise<void> {
  if (await services.repository(repository).linkBlob(repository, digest, size)) return;
  throw new OciError("BLOB_UNKNOWN", `blob ${digest} was being garbage-collected; push it again`, { detail: { digest } });
}
