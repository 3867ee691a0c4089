import { DurableObject } from "cloudflare:workers";
import type { Env } from "../env.js";
import { edgeSettings } from "../env.js";
import type { GcRun } from "./run.js";
import { collectorFromEnv } from "./storage.js";

/** Work per alarm: well inside a Worker's CPU limit; the next alarm carries on at once. */
const BATCH_BUDGET_MS = 10_000;
/** Set before each batch, so that a collector killed mid-batch is woken again (and retries). */
const WATCHDOG_MS = 30_000;

/**
 * Runs collections, in batches, from its alarm: the cron trigger and `POST /shoal/v1/gc` start a
 * run here and every alarm does up to BATCH_BUDGET_MS of it. The run's progress lives in the
 * ledger, so an alarm that dies (CPU limit, a crash, a restart of the host) loses at most the batch
 * in hand, which the next alarm does again. One object for the edge.
 */
export class Collector extends DurableObject<Env> {
  async start(options: { trigger: string; dryRun: boolean; batchSize?: number }): Promise<{ run: GcRun; joined: boolean }> {
    const graceMs = edgeSettings(this.env).gcGraceSeconds * 1000;
    const ledger = this.env.GC_LEDGER.get(this.env.GC_LEDGER.idFromName("ledger"));
    const started = await ledger.begin({ ...options, graceMs });
    // A run joined may be one whose collector died: waking it is what resumes it.
    await this.ctx.storage.setAlarm(Date.now());
    return started;
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
