import type { Identity } from "./auth.js";
import { edgeSettings, type EdgeSettings, type Env } from "./env.js";
import { R2BlobStore, type BlobStore } from "./storage/blob-store.js";
import { MetainfoStore } from "./storage/metainfo-store.js";
import type { RepositoryIndex } from "./build-index/repository-index.js";
import type { UploadSession } from "./upload/upload-session.js";
import type { Catalog } from "./build-index/catalog.js";
import type { Tracker } from "./tracker/tracker.js";
import { trackerObjectName } from "./tracker/shard-router.js";
import type { ReplicationQueue } from "./upstream/replication-queue.js";
import type { GcRun } from "./gc/run.js";
import type { FillBudget } from "./upstream/fill-budget.js";

/** What route handlers use, built once per request from the bindings (hono `c.get("services")`). */
export interface Services {
  blobs: BlobStore;
  metainfo: MetainfoStore;
  repository(name: string): DurableObjectStub<RepositoryIndex>;
  upload(id: string): DurableObjectStub<UploadSession>;
  catalog(): DurableObjectStub<Catalog>;
  /** The tracker object of shard `index` of `count` of a blob's swarm (one shard: the digest's). */
  tracker(digest: string, index?: number, count?: number): DurableObjectStub<Tracker>;
  /** The queue of tags to copy to replication targets (one object). */
  replication(): DurableObjectStub<ReplicationQueue>;
  /** What anonymous pull-through may still store (one object). */
  fillBudget(): DurableObjectStub<FillBudget>;
  /** The latest garbage collection runs, newest first (gc/ledger.ts). */
  gcRuns(limit: number): Promise<GcRun[]>;
  settings: EdgeSettings;
}

export function servicesFromEnv(env: Env): Services {
  return {
    blobs: new R2BlobStore(env.BLOBS),
    metainfo: new MetainfoStore(env.BLOBS),
    repository: (name) => env.REPOSITORY.get(env.REPOSITORY.idFromName(name)),
    upload: (id) => env.UPLOAD.get(env.UPLOAD.idFromName(id)),
    catalog: () => env.CATALOG.get(env.CATALOG.idFromName("catalog")),
    tracker: (digest, index = 0, count = 1) => env.TRACKER.get(env.TRACKER.idFromName(trackerObjectName(digest, index, count))),
    replication: () => env.REPLICATION.get(env.REPLICATION.idFromName("replication")),
    fillBudget: () => env.FILL_BUDGET.get(env.FILL_BUDGET.idFromName("fill-budget")),
    gcRuns: (limit) => env.GC_LEDGER.get(env.GC_LEDGER.idFromName("ledger")).history(limit),
    settings: edgeSettings(env),
  };
}

/** `identity`: who the request is from, set by the auth middleware (auth.ts). */
export type AppEnv = { Bindings: Env; Variables: { services: Services; identity: Identity } };
