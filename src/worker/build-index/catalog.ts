import { DurableObject } from "cloudflare:workers";
import type { Env } from "../env.js";
import type { Page } from "./paging.js";

/** The list of repositories for `GET /v2/_catalog`: one object, written once per new repository. */
export class Catalog extends DurableObject<Env> {
  private readonly sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    ctx.blockConcurrencyWhile(async () => {
      this.sql.exec(`CREATE TABLE IF NOT EXISTS repositories (name TEXT PRIMARY KEY, created_at INTEGER NOT NULL)`);
    });
  }

  async add(name: string): Promise<void> {
    this.sql.exec(`INSERT OR IGNORE INTO repositories (name, created_at) VALUES (?, ?)`, name, Date.now());
  }

  async list(limit: number, last: string | null): Promise<Page> {
    const rows = this.sql
      .exec<{ name: string }>(`SELECT name FROM repositories WHERE name > ? ORDER BY name LIMIT ?`, last ?? "", limit + 1)
      .toArray()
      .map((r) => r.name);
    return { items: rows.slice(0, limit), more: rows.length > limit };
  }
}
