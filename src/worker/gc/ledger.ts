import { SqliteObject } from "../storage/sqlite-object.js";
import type { Env } from "../env.js";
import { addCounters, emptyCounters, type GcCounters, type GcPhase, type GcRun } from "./run.js";

/** Finished runs kept for the dashboard and `shoal gc`. */
const HISTORY = 20;

export interface ProtectAnswer {
  /** A (deleting) run is going on: the caller's repository must keep asking. */
  active: boolean;
  /** Digests this run has claimed for deletion: the caller must not link them. */
  gone: string[];
}

export interface Advance {
  phase: GcPhase;
  cursor: string;
  counters?: Partial<GcCounters>;
  /** Digests found live (mark phase). */
  live?: string[];
  /** Upload leftovers (content objects) that may be orphans, with their size. */
  addCandidates?: { key: string; bytes: number }[];
  /** Content objects a blob points at: not orphans. */
  dropCandidates?: string[];
}

const GC_LEDGER_SCHEMA = `
  CREATE TABLE IF NOT EXISTS runs (id INTEGER PRIMARY KEY AUTOINCREMENT, run TEXT NOT NULL, finished INTEGER NOT NULL DEFAULT 0);
  CREATE TABLE IF NOT EXISTS marked (digest TEXT PRIMARY KEY);
  CREATE TABLE IF NOT EXISTS protected (digest TEXT PRIMARY KEY);
  CREATE TABLE IF NOT EXISTS tombstones (digest TEXT PRIMARY KEY);
  CREATE TABLE IF NOT EXISTS candidates (key TEXT PRIMARY KEY, bytes INTEGER NOT NULL);
`;

/**
 * The collector's state, one object for the edge: the current run (phase, cursor, counters), the
 * digests its mark found live, those pushes protected while it ran, and the tombstones of those it
 * claimed for deletion. It never calls out, so repositories may call it while they are being
 * marked (the Deno host runs each object's calls one at a time: a cycle would deadlock).
 *
 * The interlock (why a blob linked during a sweep survives): a repository that a run has marked
 * asks `protect(digests)` before it links anything, and links nothing that is `gone`. Here the
 * claim of a digest for deletion and a protect of it are serialised, so either the protect comes
 * first (the digest is kept) or the claim does (the link is refused, the client pushes again).
 */
export class GcLedger extends SqliteObject {

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env, GC_LEDGER_SCHEMA);
  }

  /** Starts a run, or answers the one going on (a second trigger joins it). */
  async begin(options: { trigger: string; dryRun: boolean; graceMs: number; batchSize?: number }): Promise<{ run: GcRun; joined: boolean }> {
    const active = this.active();
    if (active) return { run: active, joined: true };
    const now = Date.now();
    this.ctx.storage.transactionSync(() => {
      for (const table of ["marked", "protected", "tombstones", "candidates"]) this.sql.exec(`DELETE FROM ${table}`);
      const run: Omit<GcRun, "id"> = {
        trigger: options.trigger,
        dryRun: options.dryRun,
        startedAt: now,
        cutoff: now - options.graceMs,
        graceMs: options.graceMs,
        phase: "mark",
        cursor: "",
        counters: emptyCounters(),
        updatedAt: now,
        batches: 0,
        ...(options.batchSize !== undefined ? { batchSize: options.batchSize } : {}),
      };
      this.sql.exec(`INSERT INTO runs (run) VALUES (?)`, JSON.stringify(run));
      this.sql.exec(`DELETE FROM runs WHERE finished = 1 AND id <= (SELECT MAX(id) FROM runs) - ?`, HISTORY);
    });
    return { run: this.active()!, joined: false };
  }

  async current(): Promise<GcRun | null> {
    return this.active();
  }

  async run(id: number): Promise<GcRun | null> {
    const row = this.sql.exec<{ id: number; run: string }>(`SELECT id, run FROM runs WHERE id = ?`, id).toArray()[0];
    return row ? { ...(JSON.parse(row.run) as Omit<GcRun, "id">), id: row.id } : null;
  }

  async history(limit: number): Promise<GcRun[]> {
    return this.sql
      .exec<{ id: number; run: string }>(`SELECT id, run FROM runs ORDER BY id DESC LIMIT ?`, limit)
      .toArray()
      .map((row) => ({ ...(JSON.parse(row.run) as Omit<GcRun, "id">), id: row.id }));
  }

  /** See the class comment. A dry run deletes nothing, so it protects nothing. */
  async protect(digests: string[]): Promise<ProtectAnswer> {
    const run = this.active();
    if (!run || run.dryRun) return { active: false, gone: [] };
    const gone: string[] = [];
    for (const digest of digests) {
      if (this.sql.exec(`SELECT 1 FROM tombstones WHERE digest = ?`, digest).toArray().length > 0) gone.push(digest);
      else this.sql.exec(`INSERT OR IGNORE INTO protected (digest) VALUES (?)`, digest);
    }
    return { active: true, gone };
  }

  /**
   * Of these unmarked-looking digests, those still unmarked and unprotected, tombstoned (unless the
   * run is dry, or for objects nothing links, like metainfo): the caller deletes exactly these. A digest claimed before stays claimed (a batch
   * redone after a crash deletes it again).
   */
  async claim(runId: number, digests: string[], options: { tombstone: boolean } = { tombstone: true }): Promise<{ claimed: string[]; saved: number }> {
    const run = this.active();
    if (!run || run.id !== runId) return { claimed: [], saved: 0 };
    const claimed: string[] = [];
    let saved = 0;
    for (const digest of digests) {
      if (this.sql.exec(`SELECT 1 FROM marked WHERE digest = ?`, digest).toArray().length > 0) continue;
      if (this.sql.exec(`SELECT 1 FROM protected WHERE digest = ?`, digest).toArray().length > 0) {
        saved++;
        continue;
      }
      if (!run.dryRun && options.tombstone) this.sql.exec(`INSERT OR IGNORE INTO tombstones (digest) VALUES (?)`, digest);
      claimed.push(digest);
    }
    return { claimed, saved };
  }

  /** Content objects still listed as possible orphans, in key order after `after`. */
  async candidates(runId: number, after: string, limit: number): Promise<{ key: string; bytes: number }[]> {
    if (this.active()?.id !== runId) return [];
    return this.sql.exec<{ key: string; bytes: number }>(`SELECT key, bytes FROM candidates WHERE key > ? ORDER BY key LIMIT ?`, after, limit).toArray();
  }

  /**
   * Records a batch: accepted only if the run is still at `from` (two collectors racing on one run
   * do each batch's work twice at worst, which is harmless, but count it once).
   */
  async advance(runId: number, from: { phase: GcPhase; cursor: string }, to: Advance): Promise<GcRun | null> {
    const run = this.active();
    if (!run || run.id !== runId || run.phase !== from.phase || run.cursor !== from.cursor) return null;
    const now = Date.now();
    const next: GcRun = { ...run, phase: to.phase, cursor: to.cursor, counters: addCounters(run.counters, to.counters ?? {}), updatedAt: now, batches: run.batches + 1 };
    if (to.phase === "done") next.finishedAt = now;
    this.ctx.storage.transactionSync(() => {
      for (const digest of to.live ?? []) this.sql.exec(`INSERT OR IGNORE INTO marked (digest) VALUES (?)`, digest);
      for (const c of to.addCandidates ?? []) this.sql.exec(`INSERT OR REPLACE INTO candidates (key, bytes) VALUES (?, ?)`, c.key, c.bytes);
      for (const key of to.dropCandidates ?? []) this.sql.exec(`DELETE FROM candidates WHERE key = ?`, key);
      const { id: _id, ...stored } = next;
      this.sql.exec(`UPDATE runs SET run = ?, finished = ? WHERE id = ?`, JSON.stringify(stored), to.phase === "done" ? 1 : 0, run.id);
      if (to.phase === "done") {
        for (const table of ["marked", "protected", "tombstones", "candidates"]) this.sql.exec(`DELETE FROM ${table}`);
      }
    });
    return next;
  }

  private active(): GcRun | null {
    const row = this.sql.exec<{ id: number; run: string }>(`SELECT id, run FROM runs WHERE finished = 0 ORDER BY id DESC LIMIT 1`).toArray()[0];
    return row ? { ...(JSON.parse(row.run) as Omit<GcRun, "id">), id: row.id } : null;
  }
}
