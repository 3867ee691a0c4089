import { readFile } from "node:fs/promises";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { P2P_DEFAULTS } from "../shared/p2p/schedule/config.js";

/** Sizes in config files: a number of bytes or "10GiB", "512MB", … */
const SIZE_UNITS: Record<string, number> = { "": 1, b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, tib: 1024 ** 4 };

export function parseSize(value: string | number): number {
  if (typeof value === "number") return value;
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(value);
  const unit = match?.[2]?.toLowerCase() ?? "";
  if (!match || !(unit in SIZE_UNITS)) throw new Error(`invalid size ${JSON.stringify(value)} (use bytes or e.g. 10GiB, 512MB)`);
  return Math.floor(Number(match[1]) * SIZE_UNITS[unit]!);
}

const Size = z.union([z.number().int().nonnegative(), z.string()]).transform((v, ctx) => {
  try {
    return parseSize(v);
  } catch (error) {
    ctx.addIssue({ code: "custom", message: (error as Error).message });
    return z.NEVER;
  }
});

const Port = z.coerce.number().int().min(0).max(65535);


/** A rate such as "6.25MiB" (per second) or a number of bytes per second; 0 or absent: no limit. */
const Rate = Size;

const P2pConfigSchema = z
  .object({
    /** Fetch blobs through their swarms (off: every blob streams from the edge). */
    enabled: z.boolean().default(P2P_DEFAULTS.enabled),
    /** Blobs are announced as seeded for this long after they were last fetched or served. */
    seedWindowSeconds: z.number().positive().default(P2P_DEFAULTS.seedWindowSeconds),
    /** Outbound peer connections per swarm. */
    maxPeersPerSwarm: z.number().int().min(1).max(256).default(P2P_DEFAULTS.maxPeersPerSwarm),
    /** Outbound peer connections across all swarms (the peer port takes up to 128 inbound). */
    maxPeerConnections: z.number().int().min(1).max(4096).default(P2P_DEFAULTS.maxPeerConnections),
    /** Pieces requested from one peer at a time. */
    piecesPerPeer: z.number().int().min(1).max(64).default(P2P_DEFAULTS.piecesPerPeer),
    /** Pieces read from the edge (web seed) at a time, for pieces no peer has. */
    webSeedConcurrency: z.number().int().min(1).max(64).default(P2P_DEFAULTS.webSeedConcurrency),
    /** A peer that does not deliver a requested piece in this time gets a strike and loses it. */
    requestTimeoutSeconds: z.number().positive().default(P2P_DEFAULTS.requestTimeoutSeconds),
    /** A download with no verified piece for this long fails. */
    stallTimeoutSeconds: z.number().positive().default(P2P_DEFAULTS.stallTimeoutSeconds),
    /**
     * After a Range read (lazy pull) of a blob not held: fetch the rest in the background, behind
     * readers, or never (only what readers ask for is fetched; the partial copy is kept and seeded).
     */
    lazyComplete: z.enum(["background", "never"]).default("background"),
    /** Bytes per second this agent takes in from peers and the web seed (e.g. "100MiB"). */
    ingressRate: Rate.optional(),
    /** Bytes per second this agent sends to peers. */
    egressRate: Rate.optional(),
    /** Mutual TLS on the peer port: PEM files; every agent's certificate signed by `ca`. */
    tls: z
      .object({
        cert: z.string().min(1),
        key: z.string().min(1),
        ca: z.string().min(1),
        /** A peer's certificate must also name the address it was dialled at (IP SAN). */
        verifyPeerAddress: z.boolean().default(true),
      })
      .strict()
      .optional(),
  })
  .strict();

/** The agent's configuration: YAML file, then flags on top. Names follow Kraken's agent. */
export const AgentConfigSchema = z
  .object({
    edge: z.url({ message: "edge must be a URL such as http://127.0.0.1:15000" }),
    peerIp: z.string().default("127.0.0.1"),
    peerPort: Port.default(16001),
    agentServerPort: Port.default(16002),
    agentRegistryPort: Port.default(16000),
    /** Address the registry and admin servers listen on (localhost: they are for this host). */
    listenHost: z.string().default("127.0.0.1"),
    /** Address the peer port listens on (other hosts connect to it). */
    peerListenHost: z.string().default("0.0.0.0"),
    p2p: P2pConfigSchema.default({ ...P2P_DEFAULTS, lazyComplete: "background" }),
    zone: z.string().default("local"),
    cluster: z.string().default("devcluster"),
    store: z
      .object({
        dir: z.string(),
        capacity: Size.default(10 * 1024 ** 3),
      })
      .strict(),
    registry: z
      .object({
        /** How long a tag resolved at the edge is reused, in seconds (0: ask every time). */
        tagTtlSeconds: z.number().nonnegative().default(5),
      })
      .strict()
      .default({ tagTtlSeconds: 5 }),
    log: z
      .object({ level: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info") })
      .strict()
      .default({ level: "info" }),
  })
  .strict();
export type AgentConfig = z.infer<typeof AgentConfigSchema>;

/** Secrets kept out of the config file (`--secrets`): never logged. */
export const AgentSecretsSchema = z
  .object({
    /** Credentials for the edge: `user:token` (HTTP Basic) or a bare bearer token. */
    edgeToken: z.string().min(1).optional(),
    /**
     * The cluster secret: agents prove to each other that they know it before any piece moves
     * (HMAC over fresh nonces). Every agent of a cluster has the same one; absent: peers are not
     * authenticated.
     */
    clusterSecret: z.string().min(32, { message: "clusterSecret must be at least 32 characters (e.g. openssl rand -hex 32)" }).optional(),
  })
  .strict();
export type AgentSecrets = z.infer<typeof AgentSecretsSchema>;

export class ConfigError extends Error {
  override name = "ConfigError";
}

export async function readYamlFile(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    throw new ConfigError(`cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  try {
    return parseYaml(text) ?? {};
  } catch (error) {
    throw new ConfigError(`${file} is not valid YAML: ${(error as Error).message.split("\n")[0]}`);
  }
}

/** Validates merged settings; the error lists every problem with its path. */
export function parseAgentConfig(input: unknown, source = "configuration"): AgentConfig {
  const result = AgentConfigSchema.safeParse(input);
  if (!result.success) {
    const lines = result.error.issues.map((i) => `  ${i.path.join(".") || "(root)"}: ${i.message}`);
    throw new ConfigError(`invalid ${source}:\n${lines.join("\n")}`);
  }
  return result.data;
}

export function parseAgentSecrets(input: unknown, source: string): AgentSecrets {
  const result = AgentSecretsSchema.safeParse(input);
  if (!result.success) {
    throw new ConfigError(`invalid secrets in ${source}: ${result.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
  }
  return result.data;
}

/** Deep merge where `over` wins; undefined in `over` leaves `base` alone. */
export function mergeConfig(base: unknown, over: Record<string, unknown>): unknown {
  if (typeof base !== "object" || base === null || Array.isArray(base)) return over;
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const [key, value] of Object.entries(over)) {
    if (value === undefined) continue;
    out[key] =
      typeof value === "object" && value !== null && !Array.isArray(value) ? mergeConfig(out[key] ?? {}, value as Record<string, unknown>) : value;
  }
  return out;
}
