import { createApp } from "./app.js";
import type { Env } from "./env.js";
import { startRun } from "./gc/collector-object.js";

export { RepositoryIndex } from "./build-index/repository-index.js";
export { Catalog } from "./build-index/catalog.js";
export { UploadSession } from "./upload/upload-session.js";
export { Tracker } from "./tracker/tracker.js";
export { ReplicationQueue } from "./upstream/replication-queue.js";
export { FillBudget } from "./upstream/fill-budget.js";
export { GcLedger } from "./gc/ledger.js";
export { Collector } from "./gc/collector-object.js";

const app = createApp();

export default {
  fetch: (request, env, ctx) => app.fetch(request, env, ctx),
  // The cron trigger (wrangler.toml) starts a collection; its batches run in the Collector object.
  scheduled: (_controller, env, ctx) => {
    ctx.waitUntil(startRun(env, (p) => ctx.waitUntil(p), { trigger: "cron", dryRun: false }));
  },
} satisfies ExportedHandler<Env>;
