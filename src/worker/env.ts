import { z } from "zod";
import { parseTokenList } from "../shared/auth/credentials.js";
import { parseRemotes } from "./upstream/config.js";
import type { ReplicationQueue } from "./upstream/replication-queue.js";
import type { RepositoryIndex } from "./build-index/repository-index.js";
import type { UploadSession } from "./upload/upload-session.js";
import type { Catalog } from "./build-index/catalog.js";
import type { Tracker } from "./tracker/tracker.js";

/** Bindings declared in wrangler.toml. */
export interface Env {
  BLOBS: R2Bucket;
  META: KVNamespace;
  REPOSITORY: DurableObjectNamespace<RepositoryIndex>;
  UPLOAD: DurableObjectNamespace<UploadSession>;
  CATALOG: DurableObjectNamespace<Catalog>;
  TRACKER: DurableObjectNamespace<Tracker>;
  SHOAL_CHUNK_MAX_BYTES?: string;
  /** Comma-separated `user:token`: when set, pushes (and announces) need credentials (a secret). */
  SHOAL_PUSH_TOKENS?: string;
  /** "true": pulls need credentials too. */
  SHOAL_PULL_AUTH?: string;
  /** JSON: repository prefix → upstream registry (pull-through; see upstream/config.ts). */
  SHOAL_UPSTREAMS?: string;
  /** JSON: repository prefix → registry that pushed tags are copied to. */
  SHOAL_REPLICATION?: string;
  REPLICATION: DurableObjectNamespace<ReplicationQueue>;
}

/** Workers' request-body cap on the Free/Pro plans (100 MB); the default chunk limit. */
export const DEFAULT_CHUNK_MAX_BYTES = 100_000_000;

export const EdgeSettingsSchema = z.object({
  /** Largest body one upload request may carry; advertised as OCI-Chunk-Max-Length. */
  chunkMaxBytes: z.coerce.number().int().min(1024 * 1024).default(DEFAULT_CHUNK_MAX_BYTES),
  /** Who may push: empty means anyone (a registry for a trusted network). */
  pushTokens: z
    .string()
    .default("")
    .transform((value, ctx) => {
      try {
        return parseTokenList(value);
      } catch (error) {
        ctx.addIssue({ code: "custom", message: (error as Error).message });
        return z.NEVER;
      }
    }),
  pullAuth: z.enum(["true", "false", ""]).default("").transform((v) => v === "true"),
  upstreams: remotes("SHOAL_UPSTREAMS"),
  replication: remotes("SHOAL_REPLICATION"),
});

function remotes(variable: string) {
  return z
    .string()
    .optional()
    .transform((value, ctx) => {
      try {
        return parseRemotes(value, variable);
      } catch (error) {
        ctx.addIssue({ code: "custom", message: (error as Error).message });
        return z.NEVER;
      }
    });
}
export type EdgeSettings = z.infer<typeof EdgeSettingsSchema>;

/** Parsed per request (never at import time), so tests and deployments set vars freely. */
export function edgeSettings(env: Env): EdgeSettings {
  const result = EdgeSettingsSchema.safeParse({
    chunkMaxBytes: env.SHOAL_CHUNK_MAX_BYTES || undefined,
    pushTokens: env.SHOAL_PUSH_TOKENS,
    pullAuth: env.SHOAL_PULL_AUTH,
    upstreams: env.SHOAL_UPSTREAMS,
    replication: env.SHOAL_REPLICATION,
  });
  if (!result.success) {
    // Never echo the values: pushTokens holds secrets.
    throw new Error(`invalid edge settings: ${result.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
  }
  return result.data;
}
