import { SqliteObject } from "../storage/sqlite-object.js";
import type { Env } from "../env.js";

/** The window anonymous fills are counted over: the last 24 hours, in hourly buckets. */
export const FILL_WINDOW_HOURS = 24;
const HOUR_MS = 60 * 60 * 1000;

export type FillGrant = { granted: true; hour: number } | { granted: false; usedBytes: number; freesAt: number };

const FILL_BUDGET_SCHEMA = `CREATE TABLE IF NOT EXISTS fills (hour INTEGER PRIMARY KEY, bytes INTEGER NOT NULL)`;

/**
 * What anonymous pull-through has stored lately (one object for the edge): a fill reserves its size
 * before a byte is stored, and is refused when the last 24 hours' fills and it would pass the
 * limit (`SHOAL_UPSTREAM_ANONYMOUS_BYTES_PER_DAY`); a fill that fails gives its bytes back. One
 * object, so two edges' requests never both take the last bytes; it is asked only on a miss (content
 * the edge does not have yet), never on a read of what is stored.
 */
export class FillBudget extends SqliteObject {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env, FILL_BUDGET_SCHEMA);
  }

  reserve(bytes: number, limitBytes: number, now: number): FillGrant {
    const hour = Math.floor(now / HOUR_MS);
    this.sql.exec(`DELETE FROM fills WHERE hour <= ?`, hour - FILL_WINDOW_HOURS);
    const rows = this.sql.exec<{ hour: number; bytes: number }>(`SELECT hour, bytes FROM fills ORDER BY hour`).toArray();
    const used = rows.reduce((sum, row) => sum + row.bytes, 0);
    if (used + bytes > limitBytes) {
      // Room comes back as the oldest hours leave the window; a fill bigger than the limit never fits.
      let freed = 0;
      const room = used + bytes - limitBytes;
      const oldest = rows.find((row) => (freed += row.bytes) >= room)?.hour;
      return { granted: false, usedBytes: used, freesAt: oldest === undefined || bytes > limitBytes ? Number.POSITIVE_INFINITY : (oldest + FILL_WINDOW_HOURS) * HOUR_MS };
    }
    this.sql.exec(`INSERT INTO fills (hour, bytes) VALUES (?, ?) ON CONFLICT (hour) DO UPDATE SET bytes = bytes + excluded.bytes`, hour, bytes);
    return { granted: true, hour };
  }

  /** Gives back a reservation whose fill stored nothing. */
  refund(bytes: number, hour: number): void {
    this.sql.exec(`UPDATE fills SET bytes = MAX(0, bytes - ?) WHERE hour = ?`, bytes, hour);
  }
}
