import { z } from "zod";

/**
 * What a garbage collection run has found and freed, as the edge keeps it and reports it
 * (`GET /shoal/v1/gc/runs/<id>`); `shoal gc` parses the report with the same schema.
 */
export const GcCountersSchema = z.object({
  repositories: z.number(),
  manifests: z.number(),
  liveManifests: z.number(),
  /** Tags deleted by retention (or that would be, in a dry run). */
  tagsDropped: z.number(),
  manifestsDropped: z.number(),
  linksDropped: z.number(),
  /** Objects and bytes in storage when the run listed them (blobs, content, uploads, metainfo). */
  objects: z.number(),
  bytes: z.number(),
  /** Unreachable and older than the grace: freed, or, in a dry run, what would be. */
  garbageObjects: z.number(),
  garbageBytes: z.number(),
  freedObjects: z.number(),
  freedBytes: z.number(),
  /** Garbage kept because a push linked it again while the run went on (the interlock). */
  savedByInterlock: z.number(),
  /** Storage calls the run made: list pages, delete calls (of up to 1,000 keys), manifest reads. */
  storageLists: z.number(),
  storageDeletes: z.number(),
  storageReads: z.number(),
});
export type GcCounters = z.infer<typeof GcCountersSchema>;

/** The part of a run's report a client reads (the edge's `GcRun` carries more). */
export const GcRunReportSchema = z.object({
  id: z.number(),
  dryRun: z.boolean(),
  phase: z.string(),
  startedAt: z.number(),
  finishedAt: z.number().optional(),
  batches: z.number(),
  // Runs recorded before a counter existed lack it.
  counters: GcCountersSchema.partial({ storageLists: true, storageDeletes: true, storageReads: true }),
});
export type GcRunReport = z.infer<typeof GcRunReportSchema>;
