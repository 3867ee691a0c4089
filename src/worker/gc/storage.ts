import type { Env } from "../env.js";
import { servicesFromEnv } from "../services.js";
import { parseManifest, summarizeManifest } from "../../shared/oci/manifest.js";
import type { Digest } from "../../shared/oci/digest.js";
import { GcCollector, type GcBucket, type GcObject } from "./collector.js";

const LOCATION_META = "shoal-location";
const SIZE_META = "shoal-size";

/** R2's list and delete as the collector uses them (the Deno buckets offer the same calls). */
export function bucketForGc(bucket: R2Bucket): GcBucket {
  return {
    async list(prefix, startAfter, limit) {
      // `include` is R2's (the types lag): pointers are told apart by their metadata.
      const options = { prefix, limit, include: ["customMetadata"], ...(startAfter ? { startAfter } : {}) } as R2ListOptions;
      const page = await bucket.list(options);
      const objects = page.objects.map((o): GcObject => {
        const object: GcObject = { key: o.key, size: o.size, uploaded: o.uploaded.getTime() };
        const location = o.customMetadata?.[LOCATION_META];
        const declared = o.customMetadata?.[SIZE_META];
        if (location) object.location = location;
        if (declared !== undefined && Number.isSafeInteger(Number(declared))) object.declaredSize = Number(declared);
        return object;
      });
      return { objects, truncated: page.truncated };
    },
    async delete(keys) {
      await bucket.delete(keys);
    },
  };
}

/** The collector over the edge's bindings: the ledger object, the bucket, the repositories. */
export function collectorFromEnv(env: Env): GcCollector {
  const services = servicesFromEnv(env);
  const ledger = env.GC_LEDGER.get(env.GC_LEDGER.idFromName("ledger"));
  return new GcCollector({
    ledger: {
      current: () => ledger.current(),
      claim: (runId, digests, options) => ledger.claim(runId, digests, options),
      candidates: (runId, after, limit) => ledger.candidates(runId, after, limit),
      advance: (runId, from, to) => ledger.advance(runId, from, to),
    },
    bucket: bucketForGc(env.BLOBS),
    repositories: {
      list: (after, limit) => services.catalog().list(limit, after || null),
      unindexed: (name, limit) => services.repository(name).gcUnindexed(limit),
      index: (name, digest, refs) => services.repository(name).gcIndex(digest, refs),
      mark: (name, request) => services.repository(name).gcMark(request),
    },
    uploadOpen: (id) => services.upload(id).gcOpen(),
    async manifestReferences(digest) {
      const bytes = await services.blobs.readBytes(digest as Digest);
      if (!bytes) return null;
      try {
        const summary = summarizeManifest(parseManifest(bytes, null));
        return [...summary.blobs, ...summary.children];
      } catch {
        return [];
      }
    },
    policies: services.settings.gcRetention,
  });
}
