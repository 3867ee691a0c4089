import { DurableObject } from "cloudflare:workers";
import type { Env } from "../env.js";
import type { Page } from "./paging.js";

export interface PushRecord {
  repository: string;
  tag: string;
  digest: string;
  size: number;
  at: number;
}

export interface SwarmRecord {
  digest: string;
  peers: number;
  seeders: number;
  updatedAt: number;
}

/** Pushes kept for the dashboard. */
const RECENT_PUSHES = 200;

/**
 * The list of repositories for `GET /v2/_catalog` (written once per new repository), and what the
 * dashboard shows across repositories: the latest tag pushes and the live swarms, which each
 * tracker reports at most every few seconds (see tracker.ts). One object for the edge.
 */
export class Catalog extends DurableObject<Env> {
  private readonly sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    ctx.blockConcurrencyWhile(async () => {
      this.sql.exec(`
        CREATE TABLE IF NOT EXISTS repositories (name TEXT PRIMARY KEY, created_at INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS pushes (id INTEGER PRIMARY KEY AUTOINCREMENT, repository TEXT NOT NULL, tag TEXT NOT NULL, digest TEXT NOT NULL, size INTEGER NOT NULL, at INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS swarms (digest TEXT PRIMARY KEY, peers INTEGER NOT NULL, seeders INTEGER NOT NULL, updated_at INTEGER NOT NULL);
      `);
    });
  }

  async add(name: string): Promise<void> {
    this.sql.exec(`INSERT OR IGNORE INTO repositories (name, created_at) VALUES (?, ?)`, name, Date.now());
  }

  async recordPush(push: Omit<PushRecord, "at">): Promise<void> {
    this.sql.exec(`INSERT INTO pushes (repository, tag, digest, size, at) VALUES (?, ?, ?, ?, ?)`, push.repository, push.tag, push.digest, push.size, Date.now());
    this.sql.exec(`DELETE FROM pushes WHERE id <= (SELECT MAX(id) FROM pushes) - ?`, RECENT_PUSHES);
  }

  async recentPushes(limit: number): Promise<PushRecord[]> {
    return this.sql
      .exec<{ repository: string; tag: string; digest: string; size: number; at: number }>(`SELECT repository, tag, digest, size, at FROM pushes ORDER BY id DESC LIMIT ?`, limit)
      .toArray()
      .map((r) => ({ repository: r.repository, tag: r.tag, digest: r.digest, size: r.size, at: r.at }));
  }

  /** A tracker's counts; an empty swarm is dropped. */
  async reportSwarm(digest: string, counts: { peers: number; seeders: number }): Promise<void> {
    if (counts.peers === 0) this.sql.exec(`DELETE FROM swarms WHERE digest = ?`, digest);
    else this.sql.exec(`INSERT OR REPLACE INTO swarms (digest, peers, seeders, updated_at) VALUES (?, ?, ?, ?)`, digest, counts.peers, counts.seeders, Date.now());
  }

  /** Swarms that reported lately (a tracker that stopped reporting has no peers left to report). */
  async liveSwarms(maxAgeMs: number): Promise<SwarmRecord[]> {
    return this.sql
      .exec<{ digest: string; peers: number; seeders: number; updated_at: number }>(`SELECT * FROM swarms WHERE updated_at > ? ORDER BY peers DESC LIMIT 100`, Date.now() - maxAgeMs)
      .toArray()
      .map((r) => ({ digest: r.digest, peers: r.peers, seeders: r.seeders, updatedAt: r.updated_at }));
  }

  async list(limit: number, last: string | null): Promise<Page> {
    const rows = this.sql
      .exec<{ name: string }>(`SELECT name FROM repositories WHERE name > ? ORDER BY name LIMIT ?`, last ?? "", limit + 1)
      .toArray()
      .map((r) => r.name);
    return { items: rows.slice(0, limit), more: rows.length > limit };
  }
}
