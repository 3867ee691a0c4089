import { Hono } from "hono";
import type { AppEnv, Services } from "../services.js";
import { remoteFor } from "./config.js";

/** A tag pushed under a `SHOAL_REPLICATION` prefix: queued for its target (durably, before the push is answered). */
export async function replicateTag(services: Services, repository: string, tag: string, digest: string): Promise<void> {
  const match = remoteFor(services.settings.replication, repository);
  if (!match) return;
  await services.replication().enqueue({ repository, tag, digest, target: match.remote.prefix });
}

export const replicationRoutes = new Hono<AppEnv>();

/** `GET /shoal/v1/replication`: the queue — pending, failing (with their last error) and recent copies. */
replicationRoutes.get("/shoal/v1/replication", async (c) => {
  const services = c.get("services");
  const status = await services.replication().status();
  return c.json({
    targets: services.settings.replication.map((r) => ({ prefix: r.prefix, url: r.url })),
    ...status,
  });
});
