import { SqliteObject } from "../storage/sqlite-object.js";
import type { Env } from "../env.js";
import type { ManifestSummary } from "../../shared/oci/manifest.js";
import type { Page } from "./paging.js";
import { markRepository, type MarkResult } from "../gc/mark.js";
import type { RetentionPolicy } from "../gc/policy.js";

export interface StoredManifest {
  digest: string;
  mediaType: string;
  size: number;
}

export interface ManifestPut {
  repository: string;
  digest: string;
  size: number;
  summary: ManifestSummary;
  tag?: string;
  /** Digests the route found linked here (blobs, index children): checked again as the row is written. */
  requires?: string[];
}

/** Why a manifest was not stored: what it needs is not (or no longer) here. */
export type ManifestPutResult = { stored: true } | { stored: false; missing: string[] };

export interface GcMarkRequest {
  /** The run marking (absent in a dry run, which changes nothing). */
  epoch?: number;
  now: number;
  graceMs: number;
  policy: RetentionPolicy;
}

export interface GcMarkReport {
  live: string[];
  manifests: number;
  liveManifests: number;
  tagsDropped: number;
  manifestsDropped: number;
  linksDropped: number;
}

export interface ReferrerRow {
  digest: string;
  mediaType: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
  /** Annotations too large for a row: read them from the manifest itself. */
  annotationsInManifest?: boolean;
}

/** Annotations kept in the index for referrers; larger ones are read from the manifest in R2. */
const ANNOTATIONS_ROW_MAX_BYTES = 16 * 1024;
const ANNOTATIONS_IN_MANIFEST = "@manifest";

function annotationsColumn(annotations: Record<string, string> | undefined): string | null {
  if (!annotations) return null;
  const json = JSON.stringify(annotations);
  return json.length <= ANNOTATIONS_ROW_MAX_BYTES ? json : ANNOTATIONS_IN_MANIFEST;
}

const REPOSITORY_INDEX_SCHEMA = `
  CREATE TABLE IF NOT EXISTS blobs (digest TEXT PRIMARY KEY, size INTEGER NOT NULL, linked_at INTEGER NOT NULL);
  CREATE TABLE IF NOT EXISTS manifests (
    digest TEXT PRIMARY KEY, media_type TEXT NOT NULL, size INTEGER NOT NULL,
    artifact_type TEXT, subject TEXT, annotations TEXT, pushed_at INTEGER NOT NULL);
  CREATE INDEX IF NOT EXISTS manifests_subject ON manifests (subject);
  CREATE TABLE IF NOT EXISTS tags (tag TEXT PRIMARY KEY, digest TEXT NOT NULL, updated_at INTEGER NOT NULL);
  CREATE INDEX IF NOT EXISTS tags_digest ON tags (digest);
  CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
  CREATE TABLE IF NOT EXISTS gc_refs (manifest TEXT PRIMARY KEY, refs TEXT NOT NULL);
`;

/**
 * The build-index of one repository: which blobs and manifests it holds and where its tags point.
 * One object per repository, so a tag pushed is at once what every pull sees (KV would lag ~60 s).
 * SQLite-backed; manifest bytes live in R2 (a row is capped at 2 MB).
 */
export class RepositoryIndex extends SqliteObject {

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env, REPOSITORY_INDEX_SCHEMA);
  }

  /**
   * Links a verified blob into the repository (after an upload or a mount); false when the garbage
   * collector is deleting it (the client pushes it again). A link refreshes `linked_at`: the grace
   * period counts from the latest link.
   */
  async linkBlob(repository: string, digest: string, size: number): Promise<boolean> {
    await this.register(repository);
    if (!(await this.guardLinks([digest]))) return false;
    this.sql.exec(
      `INSERT INTO blobs (digest, size, linked_at) VALUES (?, ?, ?) ON CONFLICT (digest) DO UPDATE SET linked_at = excluded.linked_at`,
      digest,
      size,
      Date.now(),
    );
    return true;
  }

  /** The blob's size if it is linked here (manifests count: they are blobs too). */
  async blobSize(digest: string): Promise<number | null> {
    const row = this.sql.exec<{ size: number }>(`SELECT size FROM blobs WHERE digest = ?`, digest).toArray()[0];
    return row ? row.size : null;
  }

  async unlinkBlob(digest: string): Promise<boolean> {
    return this.sql.exec(`DELETE FROM blobs WHERE digest = ?`, digest).rowsWritten > 0;
  }

  /** Of the given digests, those that are neither a linked blob nor a manifest here. */
  async missingBlobs(digests: string[]): Promise<string[]> {
    return digests.filter((d) => this.sql.exec(`SELECT 1 FROM blobs WHERE digest = ?`, d).toArray().length === 0);
  }

  async missingManifests(digests: string[]): Promise<string[]> {
    return digests.filter((d) => this.sql.exec(`SELECT 1 FROM manifests WHERE digest = ?`, d).toArray().length === 0);
  }

  async putManifest(put: ManifestPut): Promise<ManifestPutResult> {
    await this.register(put.repository);
    if (!(await this.guardLinks([put.digest]))) return { stored: false, missing: [put.digest] };
    const now = Date.now();
    const { summary } = put;
    // Checked again here, in one step with the write: a collection may have unlinked them since.
    const missing = (put.requires ?? []).filter((d) => this.sql.exec(`SELECT 1 FROM blobs WHERE digest = ?`, d).toArray().length === 0);
    if (missing.length > 0) return { stored: false, missing };
    this.ctx.storage.transactionSync(() => {
      this.sql.exec(
        `INSERT INTO manifests (digest, media_type, size, artifact_type, subject, annotations, pushed_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (digest) DO UPDATE SET media_type = excluded.media_type`,
        put.digest,
        summary.mediaType,
        put.size,
        summary.artifactType ?? null,
        summary.subject ?? null,
        annotationsColumn(summary.annotations),
        now,
      );
      this.sql.exec(
        `INSERT INTO blobs (digest, size, linked_at) VALUES (?, ?, ?) ON CONFLICT (digest) DO UPDATE SET linked_at = excluded.linked_at`,
        put.digest,
        put.size,
        now,
      );
      this.sql.exec(`INSERT OR REPLACE INTO gc_refs (manifest, refs) VALUES (?, ?)`, put.digest, JSON.stringify([...summary.blobs, ...summary.children]));
      if (put.tag !== undefined) {
        this.sql.exec(
          `INSERT INTO tags (tag, digest, updated_at) VALUES (?, ?, ?)
           ON CONFLICT (tag) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at`,
          put.tag,
          put.digest,
          now,
        );
      }
    });
    return { stored: true };
  }

  async manifestByDigest(digest: string): Promise<StoredManifest | null> {
    const row = this.sql
      .exec<{ digest: string; media_type: string; size: number }>(`SELECT digest, media_type, size FROM manifests WHERE digest = ?`, digest)
      .toArray()[0];
    return row ? { digest: row.digest, mediaType: row.media_type, size: row.size } : null;
  }

  async manifestByTag(tag: string): Promise<StoredManifest | null> {
    const row = this.sql
      .exec<{ digest: string; media_type: string; size: number }>(
        `SELECT m.digest, m.media_type, m.size FROM tags t JOIN manifests m ON m.digest = t.digest WHERE t.tag = ?`,
        tag,
      )
      .toArray()[0];
    return row ? { digest: row.digest, mediaType: row.media_type, size: row.size } : null;
  }

  /** Deletes a manifest and the tags that point at it. */
  async deleteManifest(digest: string): Promise<boolean> {
    let deleted = false;
    this.ctx.storage.transactionSync(() => {
      deleted = this.sql.exec(`DELETE FROM manifests WHERE digest = ?`, digest).rowsWritten > 0;
      this.sql.exec(`DELETE FROM tags WHERE digest = ?`, digest);
      this.sql.exec(`DELETE FROM blobs WHERE digest = ?`, digest);
      this.sql.exec(`DELETE FROM gc_refs WHERE manifest = ?`, digest);
    });
    return deleted;
  }

  /** When a tag was last set (pushed, or resolved at an upstream), or null. */
  async tagUpdatedAt(tag: string): Promise<number | null> {
    const row = this.sql.exec<{ updated_at: number }>(`SELECT updated_at FROM tags WHERE tag = ?`, tag).toArray()[0];
    return row ? row.updated_at : null;
  }

  async deleteTag(tag: string): Promise<boolean> {
    return this.sql.exec(`DELETE FROM tags WHERE tag = ?`, tag).rowsWritten > 0;
  }

  /** Whether the repository has ever received content (for NAME_UNKNOWN). */
  async known(): Promise<boolean> {
    return this.sql.exec(`SELECT 1 FROM meta WHERE key = 'name'`).toArray().length > 0;
  }

  async listTags(limit: number, last: string | null): Promise<Page> {
    const rows = this.sql
      .exec<{ tag: string }>(`SELECT tag FROM tags WHERE tag > ? ORDER BY tag LIMIT ?`, last ?? "", limit + 1)
      .toArray()
      .map((r) => r.tag);
    return { items: rows.slice(0, limit), more: rows.length > limit };
  }

  async referrers(subject: string, artifactType: string | null): Promise<ReferrerRow[]> {
    const rows = this.sql
      .exec<{ digest: string; media_type: string; size: number; artifact_type: string | null; annotations: string | null }>(
        `SELECT digest, media_type, size, artifact_type, annotations FROM manifests
         WHERE subject = ? AND (? IS NULL OR artifact_type = ?) ORDER BY pushed_at, digest`,
        subject,
        artifactType,
        artifactType,
      )
      .toArray();
    return rows.map((r) => {
      const row: ReferrerRow = { digest: r.digest, mediaType: r.media_type, size: r.size };
      if (r.artifact_type) row.artifactType = r.artifact_type;
      if (r.annotations === ANNOTATIONS_IN_MANIFEST) row.annotationsInManifest = true;
      else if (r.annotations) row.annotations = JSON.parse(r.annotations) as Record<string, string>;
      return row;
    });
  }

  /** Manifests whose references the collector must read from their bytes (pushed before it kept them). */
  async gcUnindexed(limit: number): Promise<string[]> {
    return this.sql
      .exec<{ digest: string }>(`SELECT digest FROM manifests WHERE digest NOT IN (SELECT manifest FROM gc_refs) LIMIT ?`, limit)
      .toArray()
      .map((r) => r.digest);
  }

  async gcIndex(digest: string, refs: string[]): Promise<void> {
    if (this.sql.exec(`SELECT 1 FROM manifests WHERE digest = ?`, digest).toArray().length === 0) return;
    this.sql.exec(`INSERT OR REPLACE INTO gc_refs (manifest, refs) VALUES (?, ?)`, digest, JSON.stringify(refs));
  }

  /**
   * The collector's mark of this repository (see gc/mark.ts), applied in one synchronous step:
   * tags retention drops, manifests and links nothing live needs are deleted, and the repository
   * remembers the run (`gc_epoch`), so that every link from now on goes through `guardLinks`.
   */
  async gcMark(request: GcMarkRequest): Promise<GcMarkReport> {
    const result = this.markNow(request);
    if (request.epoch !== undefined) {
      const epoch = request.epoch;
      this.ctx.storage.transactionSync(() => {
        for (const tag of result.droppedTags) this.sql.exec(`DELETE FROM tags WHERE tag = ?`, tag);
        for (const digest of result.deadManifests) {
          this.sql.exec(`DELETE FROM manifests WHERE digest = ?`, digest);
          this.sql.exec(`DELETE FROM gc_refs WHERE manifest = ?`, digest);
          this.sql.exec(`DELETE FROM tags WHERE digest = ?`, digest);
        }
        for (const digest of result.deadLinks) this.sql.exec(`DELETE FROM blobs WHERE digest = ?`, digest);
        this.sql.exec(`INSERT OR REPLACE INTO meta (key, value) VALUES ('gc_epoch', ?)`, String(epoch));
      });
    }
    return {
      live: [...result.liveDigests],
      manifests: result.liveManifests.size + result.deadManifests.length,
      liveManifests: result.liveManifests.size,
      tagsDropped: result.droppedTags.length,
      manifestsDropped: result.deadManifests.length,
      linksDropped: result.deadLinks.length,
    };
  }

  private markNow(request: GcMarkRequest): MarkResult {
    const links = this.sql.exec<{ digest: string; linked_at: number }>(`SELECT digest, linked_at FROM blobs`).toArray();
    const linkedAt = new Map(links.map((l) => [l.digest, l.linked_at]));
    const manifests = this.sql
      .exec<{ digest: string; subject: string | null; pushed_at: number }>(`SELECT digest, subject, pushed_at FROM manifests`)
      .toArray()
      .map((m) => ({ digest: m.digest, subject: m.subject, lastPushedAt: Math.max(m.pushed_at, linkedAt.get(m.digest) ?? 0) }));
    const references = new Map(
      this.sql.exec<{ manifest: string; refs: string }>(`SELECT manifest, refs FROM gc_refs`).toArray().map((r) => [r.manifest, JSON.parse(r.refs) as string[]]),
    );
    const tags = this.sql
      .exec<{ tag: string; digest: string; updated_at: number }>(`SELECT tag, digest, updated_at FROM tags`)
      .toArray()
      .map((t) => ({ tag: t.tag, digest: t.digest, updatedAt: t.updated_at }));
    return markRepository(
      { tags, manifests, references, links: links.map((l) => ({ digest: l.digest, linkedAt: l.linked_at })) },
      { policy: request.policy, now: request.now, graceMs: request.graceMs },
    );
  }

  /**
   * The link-time half of the collector's interlock (gc/ledger.ts). While this repository carries
   * the mark of a run, each link first asks the ledger to protect the digests; false when one is
   * already claimed for deletion. A mark that lands while the question is out (Durable Objects
   * take other calls during an await) changes `gc_epoch`, and the question is asked again. With no
   * mark on the repository nothing is asked: a run that has not marked it yet will see the link.
   */
  private async guardLinks(digests: string[]): Promise<boolean> {
    for (;;) {
      const epoch = this.gcEpoch();
      if (epoch === null) return true;
      const answer = await this.env.GC_LEDGER.get(this.env.GC_LEDGER.idFromName("ledger")).protect(digests);
      if (this.gcEpoch() !== epoch) continue;
      if (!answer.active) this.sql.exec(`DELETE FROM meta WHERE key = 'gc_epoch'`);
      return answer.gone.length === 0;
    }
  }

  private gcEpoch(): string | null {
    return this.sql.exec<{ value: string }>(`SELECT value FROM meta WHERE key = 'gc_epoch'`).toArray()[0]?.value ?? null;
  }

  private async register(repository: string): Promise<void> {
    if (this.sql.exec(`SELECT 1 FROM meta WHERE key = 'name'`).toArray().length > 0) return;
    await this.env.CATALOG.get(this.env.CATALOG.idFromName("catalog")).add(repository);
    // Listed in the catalog before its first link: a run that starts from now on marks it; one
    // already past its name in the catalog answers the first guarded link as active.
    this.sql.exec(`INSERT OR REPLACE INTO meta (key, value) VALUES ('name', ?), ('gc_epoch', 'new')`, repository);
  }
}
