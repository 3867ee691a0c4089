import { createReadStream } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { pipeline } from "node:stream/promises";
import type { Logger } from "pino";
import { OciError } from "../../shared/oci/errors.js";
import { computeDigest, digestAlgorithm, parseDigest, type Digest } from "../../shared/oci/digest.js";
import { parseManifestReference } from "../../shared/oci/reference.js";
import { contentRange, parseRangeHeader } from "../../shared/oci/range.js";
import { MEDIA_TYPE, bareMediaType } from "../../shared/oci/media-types.js";
import type { DiskStore } from "../store/disk-store.js";
import type { BlobFetcher } from "../p2p/blob-fetcher.js";
import { EdgeUnavailableError, type EdgeClient } from "../edge/edge-client.js";
import type { AgentMetrics } from "../metrics.js";
import { API_VERSION_HEADER } from "./respond.js";
import { sendFileRange, sendRange } from "./send-file.js";

export interface PullOptions {
  store: DiskStore;
  /** Gets blobs that are not in the store (through their swarm, or from the edge). */
  fetcher: BlobFetcher;
  edge: EdgeClient;
  metrics: AgentMetrics;
  log: Logger;
  tagTtlMs: number;
  now?: () => number;
  /** Called when a blob already in the store is served for `name` (to keep seeding it). */
  onBlobServed?: (name: string, digest: Digest) => void;
  /** Called when a manifest is sent for a GET (the admin page names blobs and counts pulls from it). */
  onManifestServed?: (name: string, reference: string, digest: Digest, mediaType: string | undefined) => void;
}

interface CachedTag {
  digest: Digest;
  resolvedAt: number;
}

/**
 * The pull side of the agent's registry port: manifests (tags resolved at the edge, briefly
 * cached; manifests by digest kept in the store) and blobs (from the store, or fetched once into
 * it and streamed to every waiting client as they arrive).
 */
export class PullService {
  private readonly tags = new Map<string, CachedTag>();
  private readonly inFlight = new Map<string, Promise<unknown>>();
  private readonly now: () => number;

  constructor(private readonly options: PullOptions) {
    this.now = options.now ?? Date.now;
  }

  async manifest(req: IncomingMessage, res: ServerResponse, name: string, referenceText: string): Promise<void> {
    const digest = await this.locateManifest(name, referenceText, req.headers.accept);
    const entry = this.options.store.get(digest);
    if (!entry) throw new OciError("MANIFEST_UNKNOWN", `manifest ${digest} is not in ${name}`);
    const meta = await this.options.store.readMeta(digest);
    const release = this.options.store.pin(digest);
    try {
      this.options.store.touch(digest);
      res.writeHead(200, {
        ...API_VERSION_HEADER,
        "Content-Type": meta?.mediaType ?? MEDIA_TYPE.OCI_MANIFEST,
        "Docker-Content-Digest": digest,
        "Content-Length": entry.size,
        ETag: `"${digest}"`,
      });
      if (req.method === "HEAD") return void res.end();
      this.options.onManifestServed?.(name, referenceText, digest, meta?.mediaType);
      await pipeline(createReadStream(this.options.store.blobPath(digest)), res);
    } finally {
      release();
    }
  }

  /** Makes sure a manifest (by tag or digest) is in the store; returns its digest. */
  async locateManifest(name: string, referenceText: string, accept?: string): Promise<Digest> {
    const reference = parseManifestReference(referenceText);
    const digest = reference.kind === "digest" ? reference.digest : await this.resolveTag(name, reference.tag, accept);
    if (!this.options.store.get(digest)) await this.fetchManifest(name, digest, accept);
    return digest;
  }

  /**
   * Tag → digest at the edge (strongly consistent there), reused for `tagTtlMs`. Concurrent
   * requests for a tag share one edge request (a burst of pulls opens one connection, not hundreds).
   */
  private async resolveTag(name: string, tag: string, accept: string | undefined): Promise<Digest> {
    const key = `${name}:${tag}`;
    const cached = this.tags.get(key);
    if (cached && this.now() - cached.resolvedAt < this.options.tagTtlMs && this.options.store.get(cached.digest)) {
      return cached.digest;
    }
    return this.once(`tag ${key} ${accept ?? ""}`, () => this.resolveTagAtEdge(key, name, tag, accept, cached));
  }

  private async resolveTagAtEdge(key: string, name: string, tag: string, accept: string | undefined, cached: CachedTag | undefined): Promise<Digest> {
    try {
      this.options.metrics.edgeFetches.inc({ kind: "tag" });
      const manifest = await this.options.edge.getManifest(name, tag, accept);
      const digest = await this.storeManifest(manifest.body, manifest.mediaType, manifest.digest);
      this.tags.set(key, { digest, resolvedAt: this.now() });
      return digest;
    } catch (error) {
      if (error instanceof EdgeUnavailableError && cached && this.options.store.get(cached.digest)) {
        this.options.log.warn({ name, tag, digest: cached.digest, err: error.message }, "edge unreachable: serving the tag as last resolved");
        return cached.digest;
      }
      throw asOciError(error);
    }
  }

  /** One flight per key: callers that arrive while it is under way get its result. */
  private once<T>(key: string, run: () => Promise<T>): Promise<T> {
    const flying = this.inFlight.get(key) as Promise<T> | undefined;
    if (flying) return flying;
    const flight = run().finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, flight);
    return flight;
  }

  private fetchManifest(name: string, digest: Digest, accept: string | undefined): Promise<void> {
    return this.once(`manifest ${name}@${digest}`, () => this.fetchManifestAtEdge(name, digest, accept));
  }

  private async fetchManifestAtEdge(name: string, digest: Digest, accept: string | undefined): Promise<void> {
    if (this.options.store.get(digest)) return;
    this.options.metrics.edgeFetches.inc({ kind: "manifest" });
    const manifest = await this.options.edge.getManifest(name, digest, accept).catch((error: unknown) => {
      throw asOciError(error);
    });
    await this.storeManifest(manifest.body, manifest.mediaType, digest);
  }

  /** Verifies manifest bytes against the digest they were asked or announced for, then stores them. */
  private async storeManifest(body: Buffer, mediaType: string, claimed: Digest | ""): Promise<Digest> {
    const algorithm = claimed ? digestAlgorithm(parseDigest(claimed)) : "sha256";
    const digest = await computeDigest(body, algorithm);
    if (claimed && digest !== claimed) {
      throw new OciError("MANIFEST_UNKNOWN", `edge sent a manifest that hashes to ${digest}, not ${claimed}`, { status: 502 });
    }
    if (!this.options.store.get(digest)) {
      const writer = await this.options.store.createWriter(digest);
      try {
        await writer.write(body);
        await this.options.store.writeMeta(digest, { mediaType: bareMediaType(mediaType) || MEDIA_TYPE.OCI_MANIFEST });
        await writer.commit();
      } catch (error) {
        await writer.abort();
        throw error;
      }
    }
    return digest;
  }

  async blob(req: IncomingMessage, res: ServerResponse, name: string, digestText: string): Promise<void> {
    const digest = parseDigest(digestText);
    const { store, fetcher, edge, metrics } = this.options;
    let entry = store.get(digest);
    if (req.method === "HEAD") {
      // A HEAD is how a pushing client asks whether the repository has a blob: the edge's answer,
      // even when our store holds the bytes (they may have come through another repository;
      // saying yes would make the client skip an upload the edge then misses). Edge down: the store.
      const size = await edge.headBlob(name, digest).catch((error: unknown) => {
        if (error instanceof EdgeUnavailableError && entry) return entry.size;
        throw asOciError(error);
      });
      if (size === null) throw new OciError("BLOB_UNKNOWN", `blob ${digest} is not in ${name}`);
      res.writeHead(200, { ...API_VERSION_HEADER, ...blobHeaders(digest), "Content-Length": size });
      return void res.end();
    }
    const release = store.pin(digest);
    try {
      let size: number;
      let download = undefined;
      if (entry) {
        size = entry.size;
        store.touch(digest);
        this.options.onBlobServed?.(name, digest);
      } else {
        download = fetcher.fetch(name, digest);
        size = await download.ready.catch((error: unknown) => {
          throw asOciError(error);
        });
        entry = store.get(digest);
      }
      const ranged = parseRangeHeader(req.headers.range, size);
      if (ranged.kind === "unsatisfiable") {
        res.writeHead(416, { ...API_VERSION_HEADER, "Content-Range": `bytes */${size}` });
        return void res.end();
      }
      const range = ranged.kind === "satisfiable" ? ranged.range : { start: 0, end: size - 1 };
      const headers: Record<string, string | number> = { ...API_VERSION_HEADER, ...blobHeaders(digest), "Content-Length": range.end - range.start + 1 };
      if (ranged.kind === "satisfiable") headers["Content-Range"] = contentRange(range, size);
      res.writeHead(ranged.kind === "satisfiable" ? 206 : 200, headers);
      if (req.method === "HEAD" || size === 0) return void res.end();
      if (entry && !download) {
        metrics.bytesServed.inc(await sendFileRange(store.blobPath(digest), range.start, range.end, res));
        return;
      }
      // A Range read (a lazy-pulling snapshotter's) of a blob not held: its pieces are fetched
      // first and served as they verify; a whole read follows the blob as it arrives.
      const whole = range.start === 0 && range.end === size - 1;
      const withdraw = download!.prioritize(range.start, range.end, whole);
      try {
        const growing = { name: `the download of ${digest}`, open: () => download!.openForReading(), readableUpTo: (p: number, e: number) => download!.readableUpTo(p, e) };
        metrics.bytesServed.inc(await sendRange(growing, range.start, range.end, res));
      } finally {
        withdraw();
      }
    } finally {
      release();
    }
  }
}

function blobHeaders(digest: Digest): Record<string, string> {
  return { "Docker-Content-Digest": digest, "Content-Type": "application/octet-stream", "Accept-Ranges": "bytes", ETag: `"${digest}"` };
}

function asOciError(error: unknown): Error {
  if (error instanceof OciError) return error;
  if (error instanceof EdgeUnavailableError) {
    return new OciError("UNKNOWN", `the edge is unavailable and this content is not in the agent's store: ${error.message}`, { status: 503 });
  }
  return error instanceof Error ? error : new Error(String(error));
}
