import { z } from "zod";
import { buildPolicy, type AuthPolicy } from "../shared/auth/policy.js";
import { derivedTokenKey, parseTokenKeys } from "./auth/token.js";
import { parseRemotes } from "./upstream/config.js";
import type { ReplicationQueue } from "./upstream/replication-queue.js";
import type { RepositoryIndex } from "./build-index/repository-index.js";
import type { UploadSession } from "./upload/upload-session.js";
import type { Catalog } from "./build-index/catalog.js";
import type { Tracker } from "./tracker/tracker.js";
import type { GcLedger } from "./gc/ledger.js";
import type { Collector } from "./gc/collector-object.js";
import type { FillBudget } from "./upstream/fill-budget.js";
import { parseRetention } from "./gc/policy.js";

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
  /** JSON: accounts and their access rules, and the anonymous rules (see shared/auth/policy.ts; a secret). */
  SHOAL_AUTH?: string;
  /** Comma-separated keys that sign and verify bearer tokens, the first signing (a secret). */
  SHOAL_TOKEN_KEYS?: string;
  /** The token service's name (`service=` in challenges, `iss`/`aud` of tokens); default "shoal". */
  SHOAL_AUTH_SERVICE?: string;
  /** How long a bearer token lives; default 300. */
  SHOAL_TOKEN_TTL_SECONDS?: string;
  /** JSON: repository prefix → upstream registry (pull-through; see upstream/config.ts). */
  SHOAL_UPSTREAMS?: string;
  /** JSON: repository prefix → registry that pushed tags are copied to. */
  SHOAL_REPLICATION?: string;
  REPLICATION: DurableObjectNamespace<ReplicationQueue>;
  /** What anonymous pull-through stored in the last 24 hours (one object; upstream/fill-budget.ts). */
  FILL_BUDGET: DurableObjectNamespace<FillBudget>;
  /** Most bytes pull-through may store for anonymous readers in 24 hours (default 10 GiB; 0: none). */
  SHOAL_UPSTREAM_ANONYMOUS_BYTES_PER_DAY?: string;
  /** "true": the tracker accepts loopback peer addresses (a devcluster on 127.0.0.1; never in production). */
  SHOAL_TRACKER_ALLOW_LOOPBACK?: string;
  /** Most peers one source address (announcing without an account) may hold in a swarm object. */
  SHOAL_TRACKER_PEERS_PER_ADDRESS?: string;
  /** Tracker objects per swarm (1–256; default DEFAULT_TRACKER_SHARDS). */
  SHOAL_TRACKER_SHARDS?: string;
  /** Garbage collection: its state and interlock, and the object that runs it in batches. */
  GC_LEDGER: DurableObjectNamespace<GcLedger>;
  GC_COLLECTOR: DurableObjectNamespace<Collector>;
  /** Unreachable objects younger than this are never collected (default 86400: one day). */
  SHOAL_GC_GRACE_SECONDS?: string;
  /** JSON: repository prefix → retention policy (see gc/policy.ts). */
  SHOAL_GC_RETENTION?: string;
}

/** The grace period's default: a push has a day to put the manifest of the blobs it uploaded. */
export const DEFAULT_GC_GRACE_SECONDS = 24 * 60 * 60;
/**
 * Tracker objects per swarm: enough that a fleet of 20,000 starting within a second sends one
 * object about 300 first announces (README, "The tracker at fleet scale"). An object that gets
 * no announce costs nothing; the hub takes at most one small trade per active shard a second.
 */
export const DEFAULT_TRACKER_SHARDS = 64;

/** Anonymous pull-through stores at most this much in 24 hours, unless configured (10 GiB). */
export const DEFAULT_ANONYMOUS_FILL_BYTES_PER_DAY = 10 * 1024 ** 3;

/** Workers' request-body cap on the Free/Pro plans (100 MB); the default chunk limit. */
export const DEFAULT_CHUNK_MAX_BYTES = 100_000_000;

export const EdgeSettingsSchema = z.object({
  /** Largest body one upload request may carry; advertised as OCI-Chunk-Max-Length. */
  chunkMaxBytes: z.coerce.number().int().min(1024 * 1024).default(DEFAULT_CHUNK_MAX_BYTES),
  /** Raw auth settings; turned into `auth` below (one error message when they do not add up). */
  pushTokens: z.string().optional(),
  pullAuth: z.enum(["true", "false", ""]).default("").transform((v) => v === "true"),
  authJson: z.string().optional(),
  tokenKeys: z.string().optional(),
  service: z.string().regex(/^[A-Za-z0-9._:-]{1,128}$/).default("shoal"),
  tokenTtlSeconds: z.coerce.number().int().min(1).max(86_400).default(300),
  upstreams: remotes("SHOAL_UPSTREAMS"),
  replication: remotes("SHOAL_REPLICATION"),
  upstreamAnonymousBytesPerDay: z.coerce.number().int().nonnegative().default(DEFAULT_ANONYMOUS_FILL_BYTES_PER_DAY),
  trackerAllowLoopback: z.enum(["true", "false", ""]).default("").transform((v) => v === "true"),
  trackerPeersPerAddress: z.coerce.number().int().min(1).default(256),
  /** Tracker objects each swarm is spread over (shard-router.ts). */
  trackerShards: z.coerce.number().int().min(1).max(256).default(DEFAULT_TRACKER_SHARDS),
  gcGraceSeconds: z.coerce.number().int().nonnegative().default(DEFAULT_GC_GRACE_SECONDS),
  gcRetention: z
    .string()
    .optional()
    .transform((value, ctx) => {
      try {
        return parseRetention(value);
      } catch (error) {
        ctx.addIssue({ code: "custom", message: (error as Error).message });
        return z.NEVER;
      }
    }),
}).transform(({ pushTokens, pullAuth, authJson, tokenKeys, service, tokenTtlSeconds, ...rest }, ctx) => {
  try {
    const policy = buildPolicy({ auth: authJson, pushTokens, pullAuth });
    const keys = tokenKeys !== undefined && tokenKeys !== "" ? parseTokenKeys(tokenKeys) : [derivedTokenKey(`${authJson ?? ""}\0${pushTokens ?? ""}`)];
    const auth: AuthSettings = { policy, keys, service, tokenTtlSeconds };
    return { ...rest, auth };
  } catch (error) {
    ctx.addIssue({ code: "custom", message: (error as Error).message });
    return z.NEVER;
  }
});

/** Who may do what, and how tokens are made (see auth.ts). */
export interface AuthSettings {
  policy: AuthPolicy;
  /** Token keys: the first signs, all verify. */
  keys: string[];
  service: string;
  tokenTtlSeconds: number;
}

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
    authJson: env.SHOAL_AUTH,
    tokenKeys: env.SHOAL_TOKEN_KEYS,
    service: env.SHOAL_AUTH_SERVICE || undefined,
    tokenTtlSeconds: env.SHOAL_TOKEN_TTL_SECONDS || undefined,
    upstreams: env.SHOAL_UPSTREAMS,
    replication: env.SHOAL_REPLICATION,
    upstreamAnonymousBytesPerDay: env.SHOAL_UPSTREAM_ANONYMOUS_BYTES_PER_DAY || undefined,
    trackerAllowLoopback: env.SHOAL_TRACKER_ALLOW_LOOPBACK,
    trackerPeersPerAddress: env.SHOAL_TRACKER_PEERS_PER_ADDRESS || undefined,
    trackerShards: env.SHOAL_TRACKER_SHARDS || undefined,
    gcGraceSeconds: env.SHOAL_GC_GRACE_SECONDS || undefined,
    gcRetention: env.SHOAL_GC_RETENTION,
  });
  if (!result.success) {
    // Never echo the values: pushTokens holds secrets.
    throw new Error(`invalid edge settings: ${result.error.issues.map((i) => (i.path.length ? `${i.path.join(".")}: ${i.message}` : i.message)).join("; ")}`);
  }
  return result.data;
}
