import { DurableObject } from "cloudflare:workers";
import type { Env } from "../env.js";

/**
 * A Durable Object whose state is SQLite tables: its schema (`CREATE … IF NOT EXISTS`) and any
 * migration of older tables run before the object takes its first call.
 */
export abstract class SqliteObject extends DurableObject<Env> {
  protected readonly sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: Env, schema: string, migrate?: (sql: SqlStorage) => void) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    ctx.blockConcurrencyWhile(async () => {
      this.sql.exec(schema);
      migrate?.(this.sql);
    });
  }
}
