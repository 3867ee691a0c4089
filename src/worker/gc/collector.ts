import type { GcMarkReport, GcMarkRequest } from "../build-index/repository-index.js";
import type { Advance } from "./ledger.js";
import { policyFor, type PrefixedPolicy } from "./policy.js";
import { nextPhase, type GcCounters, type GcRun } from "./run.js";

/** What the collector needs of storage: listing in key order and deleting (R2, or a Deno bucket). */
export interface GcObject {
  key: string;
  size: number;
  uploaded: number;
  /** A blob pointer's target (a content object holding the bytes). */
  location?: string;
  /** The blob's size as stored beside it (a pointer is empty itself). */
  declaredSize?: number;
}

export interface GcBucket {
  list(prefix: string, startAfter: string, limit: number): Promise<{ objects: GcObject[]; truncated: boolean }>;
  delete(keys: string[]): Promise<void>;
}

export interface GcRepositories {
  list(after: string, limit: number): Promise<{ items: string[]; more: boolean }>;
  unindexed(name: string, limit: number): Promise<string[]>;
  index(name: string, digest: string, refs: string[]): Promise<void>;
  mark(name: string, request: GcMarkRequest): Promise<GcMarkReport>;
}

/** The ledger's methods the collector calls (gc/ledger.ts). */
export interface GcLedgerApi {
  current(): Promise<GcRun | null>;
  claim(runId: number, digests: string[], options?: { tombstone: boolean }): Promise<{ claimed: string[]; saved: number }>;
  candidates(runId: number, after: string, limit: number): Promise<{ key: string; bytes: number }[]>;
  advance(runId: number, from: { phase: GcRun["phase"]; cursor: string }, to: Advance): Promise<GcRun | null>;
}

export interface CollectorDeps {
  ledger: GcLedgerApi;
  bucket: GcBucket;
  repositories: GcRepositories;
  /** Whether an upload session is still open. */
  uploadOpen(id: string): Promise<boolean>;
  /** What a manifest references, read from its bytes; null when they are gone. */
  manifestReferences(digest: string): Promise<string[] | null>;
  policies: PrefixedPolicy[];
  now?: () => number;
  /** Repositories marked per batch, objects listed per batch. */
  batch?: { repositories: number; objects: number };
}

const REPOSITORIES_PER_BATCH = 10;
/** R2 lists at most 1,000 keys per call and deletes at most 1,000 per call. */
const OBJECTS_PER_BATCH = 1000;
const DELETE_MAX_KEYS = 1000;

/**
 * Mark and sweep, one batch per `step()`, with every bit of progress in the ledger: a collector
 * killed anywhere starts again from the last batch recorded, and redoing a batch is harmless
 * (marks are a union, deletes of deleted keys are no-ops, claims stay claimed).
 *
 * Phases: `mark` (every repository in the catalog, see mark.ts), `uploads` (tails of upload sessions
 * that are gone), `content` (objects assembled by uploads: orphans unless a blob points at them),
 * `blobs` (unmarked blobs older than the cutoff, their metainfo and content), `orphans` (content no
 * blob pointed at), `metainfo` (metainfo of blobs no longer stored). Content is listed before the
 * blobs so that a pointer written after its listing belongs to an upload still open then.
 */
export class GcCollector {
  private readonly now: () => number;
  private batch: { repositories: number; objects: number };

  constructor(private readonly deps: CollectorDeps) {
    this.now = deps.now ?? Date.now;
    this.batch = deps.batch ?? { repositories: REPOSITORIES_PER_BATCH, objects: OBJECTS_PER_BATCH };
  }

  /** Steps until the run is done or `budgetMs` has passed; the run as it then stands. */
  async runFor(budgetMs: number): Promise<GcRun | null> {
    const until = this.now() + budgetMs;
    let run = await this.deps.ledger.current();
    while (run && run.phase !== "done" && this.now() < until) run = await this.step(run);
    return run;
  }

  /** One batch of the current run; the run after it (null when none is going on). */
  async step(current?: GcRun): Promise<GcRun | null> {
    const run = current ?? (await this.deps.ledger.current());
    if (!run) return null;
    this.calls = { lists: 0, deletes: 0 };
    const batch = await this.batchOf(run);
    const to: Advance = { ...batch, counters: { ...batch.counters, storageLists: (batch.counters?.storageLists ?? 0) + this.calls.lists, storageDeletes: this.calls.deletes } };
    const next = await this.deps.ledger.advance(run.id, { phase: run.phase, cursor: run.cursor }, to);
    // Another collector recorded this batch first: carry on from where the ledger is.
    return next ?? (await this.deps.ledger.current());
  }

  private batchOf(run: GcRun): Promise<Advance> {
    if (run.batchSize !== undefined) {
      this.batch = { repositories: Math.min(run.batchSize, this.batch.repositories), objects: Math.min(run.batchSize, this.batch.objects) };
    }
    switch (run.phase) {
      case "mark":
        return this.mark(run);
      case "uploads":
        return this.uploads(run);
      case "content":
        return this.content(run);
      case "blobs":
        return this.blobs(run);
      case "orphans":
        return this.orphans(run);
      case "metainfo":
        return this.metainfo(run);
      case "done":
        return Promise.resolve({ phase: "done", cursor: "" });
    }
  }

  private async mark(run: GcRun): Promise<Advance> {
    const { repositories } = this.deps;
    const page = await repositories.list(run.cursor, this.batch.repositories);
    const live: string[] = [];
    const counters: Partial<GcCounters> = { repositories: 0, manifests: 0, liveManifests: 0, tagsDropped: 0, manifestsDropped: 0, linksDropped: 0 };
    for (const name of page.items) {
      // Manifests pushed before the repository kept their references: read them once.
      for (let unindexed = await repositories.unindexed(name, 100); unindexed.length > 0; unindexed = await repositories.unindexed(name, 100)) {
        for (const digest of unindexed) {
          await repositories.index(name, digest, (await this.deps.manifestReferences(digest)) ?? []);
          counters.storageReads = (counters.storageReads ?? 0) + 1;
        }
      }
      const request: GcMarkRequest = { now: this.now(), graceMs: run.graceMs, policy: policyFor(this.deps.policies, name) };
      if (!run.dryRun) request.epoch = run.id;
      const report = await repositories.mark(name, request);
      live.push(...report.live);
      counters.repositories! += 1;
      counters.manifests! += report.manifests;
      counters.liveManifests! += report.liveManifests;
      counters.tagsDropped! += report.tagsDropped;
      counters.manifestsDropped! += report.manifestsDropped;
      counters.linksDropped! += report.linksDropped;
    }
    const last = page.items.at(-1);
    return page.more && last !== undefined ? { phase: "mark", cursor: last, live, counters } : { phase: nextPhase("mark"), cursor: "", live, counters };
  }

  /** Tails of uploads whose session is gone (a crash between its steps). */
  private async uploads(run: GcRun): Promise<Advance> {
    const page = await this.list("uploads/", run);
    const counters = stored(page.objects);
    const open = new Map<string, boolean>();
    const garbage: GcObject[] = [];
    for (const object of page.objects) {
      if (object.uploaded >= run.cutoff) continue;
      const id = object.key.split("/")[1] ?? "";
      if (!open.has(id)) open.set(id, await this.deps.uploadOpen(id));
      if (!open.get(id)) garbage.push(object);
    }
    await this.free(run, garbage.map((o) => o.key), counters, garbage.length, sum(garbage.map((o) => o.size)));
    return this.onward(run, page, counters);
  }

  private async content(run: GcRun): Promise<Advance> {
    const page = await this.list("content/", run);
    const counters = stored(page.objects);
    const addCandidates: { key: string; bytes: number }[] = [];
    for (const object of page.objects) {
      if (object.uploaded >= run.cutoff) continue;
      if (!(await this.deps.uploadOpen(object.key.slice("content/".length)))) addCandidates.push({ key: object.key, bytes: object.size });
    }
    return { ...this.onward(run, page, counters), addCandidates };
  }

  private async blobs(run: GcRun): Promise<Advance> {
    const page = await this.list("blobs/", run);
    const counters = stored(page.objects);
    const dropCandidates: string[] = [];
    const old = new Map<string, GcObject>();
    for (const object of page.objects) {
      if (object.location) dropCandidates.push(object.location);
      const digest = digestOfKey(object.key);
      if (digest && object.uploaded < run.cutoff) old.set(digest, object);
    }
    const { claimed, saved } = await this.deps.ledger.claim(run.id, [...old.keys()]);
    counters.savedByInterlock = saved;
    const keys: string[] = [];
    let bytes = 0;
    for (const digest of claimed) {
      const object = old.get(digest)!;
      keys.push(object.key, metainfoKey(digest));
      if (object.location) keys.push(object.location);
      bytes += object.declaredSize ?? object.size;
    }
    await this.free(run, keys, counters, claimed.length, bytes);
    return { ...this.onward(run, page, counters), dropCandidates };
  }

  private async orphans(run: GcRun): Promise<Advance> {
    const page = await this.deps.ledger.candidates(run.id, run.cursor, this.batch.objects);
    const counters: Partial<GcCounters> = {};
    await this.free(run, page.map((c) => c.key), counters, page.length, sum(page.map((c) => c.bytes)));
    const last = page.at(-1);
    return page.length === this.batch.objects && last ? { phase: "orphans", cursor: last.key, counters } : { phase: nextPhase("orphans"), cursor: "", counters };
  }

  /** Metainfo is rebuilt from its blob on demand: any of an unmarked digest past the cutoff goes. */
  private async metainfo(run: GcRun): Promise<Advance> {
    const page = await this.list("metainfo/", run);
    const counters = stored(page.objects);
    const old = new Map<string, GcObject>();
    for (const object of page.objects) {
      const digest = digestOfKey(object.key.replace(/\.json$/, ""));
      if (digest && object.uploaded < run.cutoff) old.set(digest, object);
    }
    const { claimed } = await this.deps.ledger.claim(run.id, [...old.keys()], { tombstone: false });
    const garbage = claimed.map((d) => old.get(d)!);
    await this.free(run, garbage.map((o) => o.key), counters, garbage.length, sum(garbage.map((o) => o.size)));
    return this.onward(run, page, counters);
  }

  private calls: { lists: number; deletes: number } = { lists: 0, deletes: 0 };

  private list(prefix: string, run: GcRun) {
    this.calls.lists++;
    return this.deps.bucket.list(prefix, run.cursor, this.batch.objects);
  }

  private onward(run: GcRun, page: { objects: GcObject[]; truncated: boolean }, counters: Partial<GcCounters>): Advance {
    const last = page.objects.at(-1);
    if (page.truncated && last) return { phase: run.phase, cursor: last.key, counters };
    return { phase: nextPhase(run.phase), cursor: "", counters };
  }

  /** Deletes (unless the run is dry) and counts garbage. */
  private async free(run: GcRun, keys: string[], counters: Partial<GcCounters>, objects: number, bytes: number): Promise<void> {
    counters.garbageObjects = (counters.garbageObjects ?? 0) + objects;
    counters.garbageBytes = (counters.garbageBytes ?? 0) + bytes;
    if (run.dryRun || keys.length === 0) return;
    for (let i = 0; i < keys.length; i += DELETE_MAX_KEYS) {
      this.calls.deletes++;
      await this.deps.bucket.delete(keys.slice(i, i + DELETE_MAX_KEYS));
    }
    counters.freedObjects = (counters.freedObjects ?? 0) + objects;
    counters.freedBytes = (counters.freedBytes ?? 0) + bytes;
  }
}

function stored(objects: GcObject[]): Partial<GcCounters> {
  return { objects: objects.length, bytes: sum(objects.map((o) => o.size)) };
}

function sum(values: number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

/** `blobs/sha256/<hex>` (or `metainfo/sha256/<hex>` without `.json`) → `sha256:<hex>`. */
export function digestOfKey(key: string): string | null {
  const [, algorithm, hex, extra] = key.split("/");
  if (!algorithm || !hex || extra !== undefined) return null;
  return `${algorithm}:${hex}`;
}

export function metainfoKey(digest: string): string {
  const [algorithm, hex] = digest.split(":");
  return `metainfo/${algorithm}/${hex}.json`;
}
