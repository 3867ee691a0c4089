import { Hono } from "hono";
import { z } from "zod";
import { OciError } from "../../shared/oci/errors.js";
import type { AppEnv } from "../services.js";
import type { GcRun } from "./run.js";
import { startRun } from "./collector-object.js";
import { requireAccess } from "../auth.js";

/**
 * The collector's admin API. `POST /shoal/v1/gc` starts a run (or joins the one going on) and
 * answers at once; the run goes on in batches (gc/collector-object.ts) and `GET
 * /shoal/v1/gc/runs/<id>` shows its progress and, once `phase` is `done`, its report. Starting a
 * run needs the registry-wide `gc` right (a push token has it; with SHOAL_AUTH, a rule
 * `{"repository": "*", "actions": ["gc"]}`); reading the status is a registry-wide read.
 */
export const gcRoutes = new Hono<AppEnv>();

const StartSchema = z
  .object({
    dryRun: z.boolean().default(false),
    /** Smaller batches: less work per invocation (and, in tests, a run long enough to interrupt). */
    batchSize: z.number().int().min(1).max(1000).optional(),
  })
  .strict();

gcRoutes.post("/shoal/v1/gc", async (c) => {
  requireAccess(c, "gc", "*");
  const text = await c.req.text();
  const body = StartSchema.parse(text.trim() ? JSON.parse(text) : {});
  const { run, joined } = await startRun(c.env, (p) => c.executionCtx.waitUntil(p), {
    trigger: "api",
    dryRun: body.dryRun,
    ...(body.batchSize !== undefined ? { batchSize: body.batchSize } : {}),
  });
  return c.json({ run, joined }, joined ? 200 : 202);
});

gcRoutes.get("/shoal/v1/gc", async (c) => {
  const ledger = c.env.GC_LEDGER.get(c.env.GC_LEDGER.idFromName("ledger"));
  const settings = c.get("services").settings;
  return c.json({ runs: await ledger.history(10), graceSeconds: settings.gcGraceSeconds, retention: settings.gcRetention });
});

gcRoutes.get("/shoal/v1/gc/runs/:id", async (c) => {
  const id = Number(c.req.param("id"));
  const run = Number.isSafeInteger(id) ? await c.env.GC_LEDGER.get(c.env.GC_LEDGER.idFromName("ledger")).run(id) : null;
  if (!run) throw new OciError("UNSUPPORTED", `no garbage collection run ${c.req.param("id").slice(0, 40)}`, { status: 404 });
  return c.json(run);
});

/** Prometheus text: what storage held and what the last runs found and freed. */
gcRoutes.get("/shoal/v1/gc/metrics", async (c) => {
  const runs = await c.env.GC_LEDGER.get(c.env.GC_LEDGER.idFromName("ledger")).history(20);
  return c.text(gcMetrics(runs), 200, { "Content-Type": "text/plain; version=0.0.4" });
});

export function gcMetrics(runs: GcRun[]): string {
  const finished = runs.filter((r) => r.finishedAt !== undefined);
  const last = finished[0];
  const lastReal = finished.find((r) => !r.dryRun);
  const lines: string[] = [];
  const gauge = (name: string, help: string, value: number | undefined) => {
    if (value === undefined) return;
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`, `${name} ${value}`);
  };
  gauge("shoal_edge_stored_bytes", "Bytes in storage (blobs, upload leftovers, metainfo) as the last collection listed them.", last?.counters.bytes);
  gauge("shoal_edge_stored_objects", "Objects in storage as the last collection listed them.", last?.counters.objects);
  gauge("shoal_edge_reclaimable_bytes", "Bytes the last collection found unreachable (freed by it unless it was a dry run).", last ? (last.dryRun ? last.counters.garbageBytes : 0) : undefined);
  gauge("shoal_gc_last_run_timestamp_seconds", "When the last collection finished.", last?.finishedAt !== undefined ? Math.floor(last.finishedAt / 1000) : undefined);
  gauge("shoal_gc_last_run_duration_seconds", "How long the last collection took.", last?.finishedAt !== undefined ? (last.finishedAt - last.startedAt) / 1000 : undefined);
  gauge("shoal_gc_last_freed_bytes", "Bytes the last collection that deleted freed.", lastReal?.counters.freedBytes);
  gauge("shoal_gc_last_freed_objects", "Objects the last collection that deleted freed.", lastReal?.counters.freedObjects);
  gauge("shoal_gc_running", "1 while a collection runs.", runs.some((r) => r.finishedAt === undefined) ? 1 : 0);
  return `${lines.join("\n")}\n`;
}
