import { SqliteObject } from "../storage/sqlite-object.js";
import type { Env } from "../env.js";
import type { Page } from "./paging.js";
import { RateHistory, type RateSamples } from "../../shared/dashboard/rate-history.js";

export interface PushRecord {
  repository: string;
  tag: string;
  digest: string;
  size: number;
  at: number;
  /** The image's config and layers together (image manifests). */
  imageBytes?: number;
  /** Manifest GETs of this tag (see recordUsage). */
  pulls?: number;
}

/** A blob of a pushed image manifest: `config` or `layer 1 of 3`. */
export interface ImageBlob {
  digest: string;
  part: string;
  size: number;
}

export interface SwarmRecord {
  digest: string;
  peers: number;
  seeders: number;
  updatedAt: number;
  /** The latest pushed image holding the blob (`repository:tag`), its part and size, when known. */
  image?: string;
  part?: string;
  size?: number;
}

/** What the edge served since the last report of one isolate (usage-meter.ts). */
export interface UsageReport {
  /** Blob bytes sent (R2 reads: web-seed ranges and whole blobs). */
  servedBytes: number;
  pulls: { repository: string; tag: string; count: number }[];
}

/** Seconds of the edge's throughput kept (in memory: a restarted object starts a new plot). */
const HISTORY_SECONDS = 120;

/** Pushes kept for the dashboard. */
const RECENT_PUSHES = 200;

const CATALOG_SCHEMA = `
  CREATE TABLE IF NOT EXISTS repositories (name TEXT PRIMARY KEY, created_at INTEGER NOT NULL);
  CREATE TABLE IF NOT EXISTS pushes (id INTEGER PRIMARY KEY AUTOINCREMENT, repository TEXT NOT NULL, tag TEXT NOT NULL, digest TEXT NOT NULL, size INTEGER NOT NULL, at INTEGER NOT NULL);
  CREATE TABLE IF NOT EXISTS swarms (digest TEXT PRIMARY KEY, peers INTEGER NOT NULL, seeders INTEGER NOT NULL, updated_at INTEGER NOT NULL);
  CREATE TABLE IF NOT EXISTS image_blobs (digest TEXT PRIMARY KEY, repository TEXT NOT NULL, tag TEXT NOT NULL, part TEXT NOT NULL, size INTEGER NOT NULL);
  CREATE TABLE IF NOT EXISTS pulls (repository TEXT NOT NULL, tag TEXT NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (repository, tag));
`;

/**
 * The list of repositories for `GET /v2/_catalog` (written once per new repository), and what the
 * dashboard shows across repositories: the latest tag pushes and the live swarms, which each
 * tracker reports at most every few seconds (see tracker.ts). One object for the edge.
 */
export class Catalog extends SqliteObject {
  private readonly served = new RateHistory(HISTORY_SECONDS, ["served"]);

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env, CATALOG_SCHEMA, (sql) => {
      // Catalogs from before image sizes were recorded gain the column (NULL for their pushes).
      const columns = sql.exec<{ name: string }>(`PRAGMA table_info(pushes)`).toArray();
      if (!columns.some((c) => c.name === "image_bytes")) sql.exec(`ALTER TABLE pushes ADD COLUMN image_bytes INTEGER`);
    });
  }

  async add(name: string): Promise<void> {
    this.sql.exec(`INSERT OR IGNORE INTO repositories (name, created_at) VALUES (?, ?)`, name, Date.now());
  }

  /** A tag push; `blobs` (an image manifest's config and layers) name the swarms of those blobs on the dashboard. */
  async recordPush(push: Omit<PushRecord, "at" | "imageBytes" | "pulls"> & { blobs?: ImageBlob[] }): Promise<void> {
    const imageBytes = push.blobs?.length ? push.blobs.reduce((n, b) => n + b.size, 0) : null;
    this.sql.exec(`INSERT INTO pushes (repository, tag, digest, size, at, image_bytes) VALUES (?, ?, ?, ?, ?, ?)`, push.repository, push.tag, push.digest, push.size, Date.now(), imageBytes);
    this.sql.exec(`DELETE FROM pushes WHERE id <= (SELECT MAX(id) FROM pushes) - ?`, RECENT_PUSHES);
    for (const blob of push.blobs ?? []) {
      this.sql.exec(`INSERT OR REPLACE INTO image_blobs (digest, repository, tag, part, size) VALUES (?, ?, ?, ?, ?)`, blob.digest, push.repository, push.tag, blob.part, blob.size);
    }
  }

  async recentPushes(limit: number): Promise<PushRecord[]> {
    return this.sql
      .exec<{ repository: string; tag: string; digest: string; size: number; at: number; image_bytes: number | null; pulls: number | null }>(
        `SELECT p.repository, p.tag, p.digest, p.size, p.at, p.image_bytes, u.count AS pulls FROM pushes p LEFT JOIN pulls u ON u.repository = p.repository AND u.tag = p.tag ORDER BY p.id DESC LIMIT ?`,
        limit,
      )
      .toArray()
      .map((r) => ({
        repository: r.repository,
        tag: r.tag,
        digest: r.digest,
        size: r.size,
        at: r.at,
        ...(r.image_bytes === null ? {} : { imageBytes: r.image_bytes }),
        pulls: r.pulls ?? 0,
      }));
  }

  /**
   * What one isolate served since its last report: the bytes go into the per-second plot (memory
   * only), the pulls into their counters. Isolates report at most once a second each, never once
   * per request (usage-meter.ts), so this costs one small write a second at most.
   */
  async recordUsage(report: UsageReport): Promise<void> {
    this.served.add("served", report.servedBytes, Date.now());
    for (const p of report.pulls) {
      this.sql.exec(`INSERT INTO pulls (repository, tag, count) VALUES (?, ?, ?) ON CONFLICT (repository, tag) DO UPDATE SET count = count + excluded.count`, p.repository, p.tag, p.count);
    }
  }

  /** Blob bytes served per second, the last minutes. */
  async throughput(): Promise<RateSamples> {
    return this.served.samples(Date.now());
  }

  /** Manifest GETs by tag, for the given repositories. */
  async pullCounts(repositories: string[]): Promise<{ repository: string; tag: string; count: number }[]> {
    if (repositories.length === 0) return [];
    return this.sql
      .exec<{ repository: string; tag: string; count: number }>(`SELECT repository, tag, count FROM pulls WHERE repository IN (${repositories.map(() => "?").join(",")})`, ...repositories)
      .toArray()
      .map((r) => ({ repository: r.repository, tag: r.tag, count: r.count }));
  }

  /** A tracker's counts; an empty swarm is dropped. */
  async reportSwarm(digest: string, counts: { peers: number; seeders: number }): Promise<void> {
    if (counts.peers === 0) this.sql.exec(`DELETE FROM swarms WHERE digest = ?`, digest);
    else this.sql.exec(`INSERT OR REPLACE INTO swarms (digest, peers, seeders, updated_at) VALUES (?, ?, ?, ?)`, digest, counts.peers, counts.seeders, Date.now());
  }

  /** Swarms that reported lately (a tracker that stopped reporting has no peers left to report). */
  async liveSwarms(maxAgeMs: number): Promise<SwarmRecord[]> {
    return this.sql
      .exec<{ digest: string; peers: number; seeders: number; updated_at: number; repository: string | null; tag: string | null; part: string | null; size: number | null }>(
        `SELECT s.digest, s.peers, s.seeders, s.updated_at, b.repository, b.tag, b.part, b.size FROM swarms s LEFT JOIN image_blobs b ON b.digest = s.digest WHERE s.updated_at > ? ORDER BY s.peers DESC LIMIT 100`,
        Date.now() - maxAgeMs,
      )
      .toArray()
      .map((r) => ({
        digest: r.digest,
        peers: r.peers,
        seeders: r.seeders,
        updatedAt: r.updated_at,
        ...(r.repository === null ? {} : { image: `${r.repository}:${r.tag}`, part: r.part!, size: r.size! }),
      }));
  }

  async list(limit: number, last: string | null): Promise<Page> {
    const rows = this.sql
      .exec<{ name: string }>(`SELECT name FROM repositories WHERE name > ? ORDER BY name LIMIT ?`, last ?? "", limit + 1)
      .toArray()
      .map((r) => r.name);
    return { items: rows.slice(0, limit), more: rows.length > limit };
  }
}
