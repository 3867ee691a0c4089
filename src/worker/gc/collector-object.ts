import { DurableObject } from "cloudflare:workers";
import type { Env } from "../env.js";
import { edgeSettings } from "../env.js";
import type { GcRun } from "./run.js";
import { collectorFromEnv } from "./storage.js";

/**
 * Starts a run (or joins the one going on) and wakes the collector, without waiting for it: on the
 * Deno host an object's calls run one at a time, and the collector may be in the middle of a batch.
 */
export async function startRun(env: Env, waitUntil: (promise: Promise<unknown>) => void, options: { trigger: string; dryRun: boolean; batchSize?: number }): Promise<{ run: GcRun; joined: boolean }> {
  const graceMs = edgeSettings(env).gcGraceSeconds * 1000;
  const started = await env.GC_LEDGER.get(env.GC_LEDGER.idFromName("ledger")).begin({ ...options, graceMs });
  // A run joined may be one whose collector died: waking it is what resumes it.
  waitUntil(env.GC_COLLECTOR.get(env.GC_COLLECTOR.idFromName("collector")).wake());
  return started;
}

/**
 * Work per alarm: well inside a Worker's CPU limit; the next alarm carries on at once. Short,
 * because workerd (miniflare, the devcluster) holds the edge's other requests while an alarm runs.
 */
const BATCH_BUDGET_MS = 1_000;
/** Set before each batch, so that a collector killed mid-batch is woken again (and retries). */
const WATCHDOG_MS = 30_000;

/**
 * Runs collections, in batches, from its alarm: the cron trigger and `POST /shoal/v1/gc` start a
 * run (`startRun`) and wake it, and every alarm does up to BATCH_BUDGET_MS of it. The run's progress lives in the
 * ledger, so an alarm that dies (CPU limit, a crash, a restart of the host) loses at most the batch
 * in hand, which the next alarm does again. One object for the edge.
 */
export class Collector extends DurableObject<Env> {
  async wake(): Promise<void> {
    await this.ctx.storage.setAlarm(Date.now());
  }

  override async alarm(): Promise<void> {
    await this.ctx.storage.setAlarm(Date.now() + WATCHDOG_MS);
    try {
      const run = await collectorFromEnv(this.env).runFor(BATCH_BUDGET_MS);
      if (!run || run.phase === "done") {
        await this.ctx.storage.deleteAlarm();
        if (run) console.log(JSON.stringify({ level: "info", msg: "gc run finished", run: run.id, dryRun: run.dryRun, ...run.counters }));
      } else {
        await this.ctx.storage.setAlarm(Date.now());
      }
    } catch (error) {
      // The watchdog alarm retries it.
      console.error(JSON.stringify({ level: "error", msg: "gc batch failed", error: String((error as Error)?.stack ?? error) }));
    }
  }
}
