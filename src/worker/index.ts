import { createApp } from "./app.js";
import type { Env } from "./env.js";

export { RepositoryIndex } from "./build-index/repository-index.js";
export { Catalog } from "./build-index/catalog.js";
export { UploadSession } from "./upload/upload-session.js";
export { Tracker } from "./tracker/tracker.js";
export { ReplicationQueue } from "./upstream/replication-queue.js";

const app = createApp();

export default {
  fetch: (request, env, ctx) => app.fetch(request, env, ctx),
} satisfies ExportedHandler<Env>;
