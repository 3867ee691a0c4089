import { DurableObject } from "cloudflare:workers";
import type { Env } from "../env.js";
import type { ManifestSummary } from "../../shared/oci/manifest.js";
import type { Page } from "./paging.js";

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

/**
 * The build-index of one repository: which blobs and manifests it holds and where its tags point.
 * One object per repository, so a tag pushed is at once what every pull sees (KV would lag ~60 s).
 * SQLite-backed; manifest bytes live in R2 (a row is capped at 2 MB).
 */
export class RepositoryIndex extends DurableObject<Env> {
  private readonly sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    ctx.blockConcurrencyWhile(async () => {
      this.sql.exec(`
        CREATE TABLE IF NOT EXISTS blobs (digest TEXT PRIMARY KEY, size INTEGER NOT NULL, linked_at INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS manifests (
          digest TEXT PRIMARY KEY, media_type TEXT NOT NULL, size INTEGER NOT NULL,
          artifact_type TEXT, subject TEXT, annotations TEXT, pushed_at INTEGER NOT NULL);
        CREATE INDEX IF NOT EXISTS manifests_subject ON manifests (subject);
        CREATE TABLE IF NOT EXISTS tags (tag TEXT PRIMARY KEY, digest TEXT NOT NULL, updated_at INTEGER NOT NULL);
        CREATE INDEX IF NOT EXISTS tags_digest ON tags (digest);
        CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      `);
    });
  }

  /** Links a verified blob into the repository (after an upload or a mount). */
  async linkBlob(repository: string, digest: string, size: number): Promise<void> {
    this.sql.exec(`INSERT OR IGNORE INTO blobs (digest, size, linked_at) VALUES (?, ?, ?)`, digest, size, Date.now());
    await this.register(repository);
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

  async putManifest(put: ManifestPut): Promise<void> {
    const now = Date.now();
    const { summary } = put;
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
      this.sql.exec(`INSERT OR IGNORE INTO blobs (digest, size, linked_at) VALUES (?, ?, ?)`, put.digest, put.size, now);
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
    await this.register(put.repository);
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

  private async register(repository: string): Promise<void> {
    if (this.sql.exec(`SELECT 1 FROM meta WHERE key = 'name'`).toArray().length > 0) return;
    await this.env.CATALOG.get(this.env.CATALOG.idFromName("catalog")).add(repository);
    this.sql.exec(`INSERT OR REPLACE INTO meta (key, value) VALUES ('name', ?)`, repository);
  }
}
