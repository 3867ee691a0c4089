import { SqliteObject } from "../storage/sqlite-object.js";
import type { Env } from "../env.js";
import { servicesFromEnv } from "../services.js";
import { remoteFor } from "./config.js";
import { Replicator } from "./replicate.js";

export interface ReplicationJob {
  id: number;
  repository: string;
  tag: string;
  digest: string;
  target: string;
  state: "pending" | "done";
  attempts: number;
  nextAt: number;
  lastError: string | null;
  createdAt: number;
  doneAt: number | null;
  bytesSent: number;
}

/** Retries back off: 1 s, 2 s, 4 s … up to five minutes. */
const MAX_BACKOFF_MS = 5 * 60 * 1000;
const BATCH = 8;

const REPLICATION_QUEUE_SCHEMA = `
  CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, repository TEXT NOT NULL, tag TEXT NOT NULL, digest TEXT NOT NULL,
    target TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL, next_at INTEGER NOT NULL,
    last_error TEXT, created_at INTEGER NOT NULL, done_at INTEGER, bytes_sent INTEGER NOT NULL DEFAULT 0);
  CREATE INDEX IF NOT EXISTS jobs_due ON jobs (state, next_at);
`;

/**
 * Tags to copy to replication targets (`SHOAL_REPLICATION`), durably: a pushed tag is a row here
 * and an alarm; the alarm copies due jobs (see replicate.ts) and retries failures with backoff, so
 * a target that is down gets the tag once it is back. A newer push of a tag still waiting replaces
 * its digest (the target ends at the latest). One object for the edge; its rows are the status.
 */
export class ReplicationQueue extends SqliteObject {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env, REPLICATION_QUEUE_SCHEMA);
  }

  async enqueue(job: { repository: string; tag: string; digest: string; target: string }): Promise<void> {
    const now = Date.now();
    const waiting = this.sql
      .exec<{ id: number }>(`SELECT id FROM jobs WHERE state = 'pending' AND repository = ? AND tag = ? AND target = ?`, job.repository, job.tag, job.target)
      .toArray()[0];
    if (waiting) {
      this.sql.exec(`UPDATE jobs SET digest = ?, next_at = ?, attempts = 0, last_error = NULL WHERE id = ?`, job.digest, now, waiting.id);
    } else {
      this.sql.exec(
        `INSERT INTO jobs (repository, tag, digest, target, state, attempts, next_at, created_at) VALUES (?, ?, ?, ?, 'pending', 0, ?, ?)`,
        job.repository,
        job.tag,
        job.digest,
        job.target,
        now,
        now,
      );
    }
    await this.ctx.storage.setAlarm(now);
  }

  override async alarm(): Promise<void> {
    const now = Date.now();
    const services = servicesFromEnv(this.env);
    const due = this.rows(`SELECT * FROM jobs WHERE state = 'pending' AND next_at <= ? ORDER BY next_at LIMIT ?`, now, BATCH);
    for (const job of due) {
      const match = remoteFor(services.settings.replication, job.repository);
      try {
        if (!match || match.remote.prefix !== job.target) throw new Error(`no replication target ${job.target} is configured any more`);
        const sent = await new Replicator(services, match.remote, match.name).replicate(job.repository, job.tag, job.digest);
        this.sql.exec(`UPDATE jobs SET state = 'done', done_at = ?, last_error = NULL, bytes_sent = ? WHERE id = ?`, Date.now(), sent.bytes, job.id);
        console.log(JSON.stringify({ level: "info", msg: "replicated", repository: job.repository, tag: job.tag, digest: job.digest, to: match.remote.url, blobs: sent.blobs, bytes: sent.bytes }));
      } catch (error) {
        const attempts = job.attempts + 1;
        const message = (error as Error).message.slice(0, 500);
        this.sql.exec(`UPDATE jobs SET attempts = ?, next_at = ?, last_error = ? WHERE id = ?`, attempts, Date.now() + Math.min(MAX_BACKOFF_MS, 1000 * 2 ** (attempts - 1)), message, job.id);
        console.log(JSON.stringify({ level: "warn", msg: "replication failed, will retry", repository: job.repository, tag: job.tag, attempts, error: message }));
      }
    }
    // Done jobs are kept a day for the status page.
    this.sql.exec(`DELETE FROM jobs WHERE state = 'done' AND done_at < ?`, now - 24 * 3600 * 1000);
    const next = this.sql.exec<{ next: number | null }>(`SELECT MIN(next_at) AS next FROM jobs WHERE state = 'pending'`).toArray()[0]?.next;
    if (next !== null && next !== undefined) await this.ctx.storage.setAlarm(Math.max(next, Date.now() + 50));
  }

  async status(): Promise<{ pending: number; failing: number; done: number; jobs: ReplicationJob[] }> {
    const count = (where: string) => this.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM jobs WHERE ${where}`).toArray()[0]!.n;
    return {
      pending: count(`state = 'pending'`),
      failing: count(`state = 'pending' AND attempts > 0`),
      done: count(`state = 'done'`),
      jobs: this.rows(`SELECT * FROM jobs ORDER BY id DESC LIMIT 100`),
    };
  }

  private rows(query: string, ...bindings: unknown[]): ReplicationJob[] {
    return this.sql
      .exec<Record<string, string | number | null>>(query, ...bindings)
      .toArray()
      .map((r) => ({
        id: r.id as number,
        repository: r.repository as string,
        tag: r.tag as string,
        digest: r.digest as string,
        target: r.target as string,
        state: r.state as "pending" | "done",
        attempts: r.attempts as number,
        nextAt: r.next_at as number,
        lastError: r.last_error as string | null,
        createdAt: r.created_at as number,
        doneAt: r.done_at as number | null,
        bytesSent: r.bytes_sent as number,
      }));
  }
}
