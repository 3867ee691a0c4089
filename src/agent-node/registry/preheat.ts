import { readFile } from "node:fs/promises";
import type { Logger } from "pino";
import { z } from "zod";
import type { Digest } from "../../shared/oci/digest.js";
import { OciError } from "../../shared/oci/errors.js";
import { parseManifest } from "../../shared/oci/manifest.js";
import { formatManifestReference, parseImageReference } from "../../shared/oci/reference.js";
import type { BlobFetcher } from "../p2p/blob-fetcher.js";
import type { Download } from "../store/download.js";
import type { DiskStore } from "../store/disk-store.js";
import type { PullService } from "./pull.js";

const PreheatRequestSchema = z.object({ image: z.string().min(1).max(512) }).strict();

export interface PreheatBlob {
  digest: string;
  size: number;
  state: "stored" | "fetching" | "failed";
  written: number;
  error?: string;
}

export interface PreheatResult {
  status: number;
  body: { image: string; digest: string; blobs: PreheatBlob[]; done: boolean } | { error: string };
}

/**
 * `POST /v1/preheat {"image": "repo:tag"}`: fetches an image into the store before anything pulls
 * it (every platform of an index: the fleet is mixed). Idempotent: each call starts what is neither
 * stored nor being fetched (a failed blob is tried again) and answers with the progress of every
 * blob, 202 until all are stored, then 200. Blobs come through their swarms like any pull.
 */
export class Preheater {
  private readonly fetching = new Map<Digest, { download: Download; error?: string }>();

  constructor(
    private readonly options: { pull: PullService; fetcher: BlobFetcher; store: DiskStore; log: Logger },
  ) {}

  async preheat(input: unknown): Promise<PreheatResult> {
    const parsed = PreheatRequestSchema.safeParse(input);
    if (!parsed.success) return { status: 400, body: { error: 'the body must be {"image": "repo:tag"}' } };
    let image;
    try {
      image = parseImageReference(parsed.data.image);
    } catch (error) {
      return { status: 400, body: { error: (error as Error).message } };
    }
    const { pull, store } = this.options;
    try {
      const top = await pull.locateManifest(image.name, formatManifestReference(image.reference));
      const blobs = new Map<Digest, number>();
      const manifest = await this.readManifest(top);
      const images = manifest.kind === "image" ? [manifest] : [];
      if (manifest.kind === "index") {
        for (const child of manifest.manifest.manifests) {
          const digest = await pull.locateManifest(image.name, child.digest);
          const parsedChild = await this.readManifest(digest);
          if (parsedChild.kind === "image") images.push(parsedChild);
        }
      }
      for (const one of images) for (const blob of [one.manifest.config, ...one.manifest.layers]) blobs.set(blob.digest as Digest, blob.size);
      const progress = [...blobs].map(([digest, size]) => this.progressOf(image.name, digest, size));
      const done = progress.every((b) => b.state === "stored");
      if (!done) this.options.log.info({ image: parsed.data.image, blobs: progress.length, stored: progress.filter((b) => b.state === "stored").length }, "preheating");
      return { status: done ? 200 : 202, body: { image: parsed.data.image, digest: top, blobs: progress, done } };
    } catch (error) {
      const status = error instanceof OciError ? error.status : 500;
      return { status, body: { error: (error as Error).message } };
    }
  }

  private async readManifest(digest: Digest) {
    const { store } = this.options;
    const meta = await store.readMeta(digest);
    return parseManifest(await readFile(store.blobPath(digest)), meta?.mediaType);
  }

  /** Starts a fetch unless the blob is stored or on its way; reports where it stands. */
  private progressOf(name: string, digest: Digest, size: number): PreheatBlob {
    if (this.options.store.get(digest)) {
      this.fetching.delete(digest);
      return { digest, size, state: "stored", written: size };
    }
    let job = this.fetching.get(digest);
    if (job?.error) {
      const error = job.error;
      this.fetching.delete(digest);
      return { digest, size, state: "failed", written: 0, error };
    }
    if (!job) {
      const download = this.options.fetcher.fetch(name, digest);
      const started = { download } as { download: Download; error?: string };
      download.finished.catch((error: Error) => (started.error = error.message));
      this.fetching.set(digest, started);
      job = started;
    }
    return { digest, size, state: "fetching", written: job.download.written };
  }
}
