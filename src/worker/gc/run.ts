import type { GcCounters } from "../../shared/api/gc.js";

/**
 * One collection run as the ledger keeps it: its phase, the cursor within the phase, and what it
 * has found and freed so far. Phases run in this order; each lists one prefix (or the catalog) from
 * its cursor on, a batch at a time, so a run survives any number of restarts.
 */
export const PHASES = ["mark", "uploads", "content", "blobs", "orphans", "metainfo", "done"] as const;
export type GcPhase = (typeof PHASES)[number];

export type { GcCounters };

export interface GcRun {
  id: number;
  trigger: string;
  dryRun: boolean;
  startedAt: number;
  /** Objects uploaded after this (the run's start minus the grace) are never swept. */
  cutoff: number;
  graceMs: number;
  phase: GcPhase;
  cursor: string;
  counters: GcCounters;
  updatedAt: number;
  finishedAt?: number;
  /** Batches done: progress for whoever polls. */
  batches: number;
  /** Objects listed (and repositories marked) per batch, when smaller than the default. */
  batchSize?: number;
}

export function emptyCounters(): GcCounters {
  return {
    repositories: 0,
    manifests: 0,
    liveManifests: 0,
    tagsDropped: 0,
    manifestsDropped: 0,
    linksDropped: 0,
    objects: 0,
    bytes: 0,
    garbageObjects: 0,
    garbageBytes: 0,
    freedObjects: 0,
    freedBytes: 0,
    savedByInterlock: 0,
    storageLists: 0,
    storageDeletes: 0,
    storageReads: 0,
  };
}

export function addCounters(into: GcCounters, delta: Partial<GcCounters>): GcCounters {
  const out = { ...into };
  // `?? 0`: runs recorded before a counter existed lack it.
  for (const [key, value] of Object.entries(delta) as [keyof GcCounters, number][]) out[key] = (out[key] ?? 0) + value;
  return out;
}

export function nextPhase(phase: GcPhase): GcPhase {
  return PHASES[Math.min(PHASES.indexOf(phase) + 1, PHASES.length - 1)]!;
}
