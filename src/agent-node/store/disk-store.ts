import { createHash, randomUUID, type Hash } from "node:crypto";
import { mkdir, open, readdir, rename, rm, stat, unlink, utimes, writeFile, readFile, type FileHandle } from "node:fs/promises";
import path from "node:path";
import type { Logger } from "pino";
import { digestAlgorithm, digestHex, type Digest } from "../../shared/oci/digest.js";
import { MetainfoSchema, type Metainfo } from "../../shared/p2p/metainfo.js";

export interface StoreEntry {
  digest: Digest;
  size: number;
  lastAccess: number;
}

export interface StoreOptions {
  dir: string;
  capacityBytes: number;
  log: Logger;
  now?: () => number;
}

export interface StoreUsage {
  bytes: number;
  capacityBytes: number;
  blobs: number;
  pinned: number;
}

/** Thrown when a download's bytes do not hash to the digest they were fetched for. */
export class DigestMismatchError extends Error {
  override name = "DigestMismatchError";
}

/**
 * The agent's content-addressed disk store. A blob is written to a partial file and renamed into
 * `blobs/<alg>/<hex>` only once its digest matches, so a visible blob is always a verified one.
 * Capacity is enforced by least-recently-used eviction that never touches a pinned (being read)
 * blob. Survives restarts: the index is rebuilt from the directory, partial files are dropped.
 */
export class DiskStore {
  private readonly entries = new Map<Digest, StoreEntry>();
  private readonly pins = new Map<Digest, number>();
  private bytes = 0;
  private readonly now: () => number;

  constructor(private readonly options: StoreOptions) {
    this.now = options.now ?? Date.now;
  }

  get dir(): string {
    return this.options.dir;
  }

  async open(): Promise<void> {
    const { dir } = this.options;
    await rm(path.join(dir, "partial"), { recursive: true, force: true });
    await mkdir(path.join(dir, "partial"), { recursive: true });
    for (const algorithm of ["sha256", "sha512"]) {
      const folder = path.join(dir, "blobs", algorithm);
      await mkdir(folder, { recursive: true });
      for (const name of await readdir(folder)) {
        if (name.endsWith(".json") || name.endsWith(".tmp")) continue;
        const info = await stat(path.join(folder, name));
        const digest = `${algorithm}:${name}` as Digest;
        this.entries.set(digest, { digest, size: info.size, lastAccess: info.mtimeMs });
        this.bytes += info.size;
      }
    }
    this.options.log.info({ blobs: this.entries.size, bytes: this.bytes, dir }, "store opened");
    await this.evict();
  }

  blobPath(digest: Digest): string {
    return path.join(this.options.dir, "blobs", digestAlgorithm(digest), digestHex(digest));
  }

  get(digest: Digest): StoreEntry | undefined {
    return this.entries.get(digest);
  }

  /** Marks a blob as in use (not evictable) until the returned release is called. */
  pin(digest: Digest): () => void {
    this.pins.set(digest, (this.pins.get(digest) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const count = (this.pins.get(digest) ?? 1) - 1;
      if (count <= 0) this.pins.delete(digest);
      else this.pins.set(digest, count);
    };
  }

  touch(digest: Digest): void {
    const entry = this.entries.get(digest);
    if (!entry) return;
    entry.lastAccess = this.now();
    // Persist recency for restarts; best effort.
    const seconds = entry.lastAccess / 1000;
    utimes(this.blobPath(digest), seconds, seconds).catch(() => undefined);
  }

  usage(): StoreUsage {
    return { bytes: this.bytes, capacityBytes: this.options.capacityBytes, blobs: this.entries.size, pinned: this.pins.size };
  }

  list(): StoreEntry[] {
    return [...this.entries.values()];
  }

  /** Starts writing a blob; the writer hashes as it goes and only `commit()` makes it visible. */
  async createWriter(digest: Digest): Promise<BlobWriter> {
    const file = path.join(this.options.dir, "partial", `${digestAlgorithm(digest)}-${digestHex(digest)}-${randomUUID()}`);
    const handle = await open(file, "w+");
    return new BlobWriter(this, digest, file, handle);
  }

  /** Small metadata beside a blob (a manifest's media type). */
  async writeMeta(digest: Digest, meta: Record<string, string>): Promise<void> {
    await writeFile(`${this.blobPath(digest)}.meta.json`, JSON.stringify(meta));
  }

  async readMeta(digest: Digest): Promise<Record<string, string> | undefined> {
    try {
      return JSON.parse(await readFile(`${this.blobPath(digest)}.meta.json`, "utf8")) as Record<string, string>;
    } catch {
      return undefined;
    }
  }

  async writeMetainfo(metainfo: Metainfo): Promise<void> {
    const digest = metainfo.digest as Digest;
    const file = `${this.blobPath(digest)}.metainfo.json`;
    await writeFile(`${file}.tmp`, JSON.stringify(metainfo));
    await rename(`${file}.tmp`, file);
  }

  async readMetainfo(digest: Digest): Promise<Metainfo | undefined> {
    try {
      const parsed = MetainfoSchema.safeParse(JSON.parse(await readFile(`${this.blobPath(digest)}.metainfo.json`, "utf8")));
      return parsed.success && parsed.data.digest === digest ? parsed.data : undefined;
    } catch {
      return undefined;
    }
  }

  /** Called by a writer whose bytes verified. */
  async adopt(digest: Digest, partialFile: string, size: number): Promise<void> {
    const final = this.blobPath(digest);
    await rename(partialFile, final);
    if (!this.entries.has(digest)) this.bytes += size;
    this.entries.set(digest, { digest, size, lastAccess: this.now() });
    await this.evict();
  }

  async remove(digest: Digest): Promise<void> {
    const entry = this.entries.get(digest);
    if (!entry) return;
    this.entries.delete(digest);
    this.bytes -= entry.size;
    await unlink(this.blobPath(digest)).catch(() => undefined);
    await unlink(`${this.blobPath(digest)}.meta.json`).catch(() => undefined);
    await unlink(`${this.blobPath(digest)}.metainfo.json`).catch(() => undefined);
  }

  /** Drops least-recently-used, unpinned blobs until the store fits its capacity. */
  async evict(): Promise<Digest[]> {
    const evicted: Digest[] = [];
    if (this.bytes <= this.options.capacityBytes) return evicted;
    const candidates = [...this.entries.values()].filter((e) => !this.pins.has(e.digest)).sort((a, b) => a.lastAccess - b.lastAccess);
    for (const entry of candidates) {
      if (this.bytes <= this.options.capacityBytes) break;
      await this.remove(entry.digest);
      evicted.push(entry.digest);
    }
    if (evicted.length > 0) this.options.log.info({ evicted: evicted.length, bytes: this.bytes }, "store eviction");
    if (this.bytes > this.options.capacityBytes) {
      this.options.log.warn({ bytes: this.bytes, capacity: this.options.capacityBytes }, "store over capacity: remaining blobs are in use");
    }
    return evicted;
  }
}

/**
 * Writes one blob to a partial file; `commit` verifies the digest and renames, `abort` deletes.
 * Bytes written in order are hashed as they come; bytes written out of order (pieces from peers)
 * are hashed from the file at commit, from where the in-order hash stopped.
 */
export class BlobWriter {
  private readonly hash: Hash;
  /** Bytes [0, hashed) are in the running hash. */
  private hashed = 0;
  /** Highest byte written + 1. */
  written = 0;
  private closed = false;

  constructor(
    private readonly store: DiskStore,
    readonly digest: Digest,
    readonly file: string,
    private readonly handle: FileHandle,
  ) {
    this.hash = createHash(digestAlgorithm(digest));
  }

  /** Appends at the end (a sequential source). */
  async write(chunk: Uint8Array): Promise<void> {
    await this.writeAt(this.written, chunk);
  }

  async writeAt(position: number, chunk: Uint8Array): Promise<void> {
    let offset = 0;
    while (offset < chunk.byteLength) {
      const { bytesWritten } = await this.handle.write(chunk, offset, chunk.byteLength - offset, position + offset);
      offset += bytesWritten;
    }
    if (position === this.hashed) {
      this.hash.update(chunk);
      this.hashed += chunk.byteLength;
    }
    this.written = Math.max(this.written, position + chunk.byteLength);
  }

  /** Reads bytes back (to serve verified pieces to peers while the rest arrives). */
  async readAt(position: number, length: number): Promise<Buffer> {
    const buffer = Buffer.allocUnsafe(length);
    const { bytesRead } = await this.handle.read(buffer, 0, length, position);
    if (bytesRead !== length) throw new Error("short read from a partial blob");
    return buffer;
  }

  async commit(size = this.written): Promise<void> {
    if (this.closed) throw new Error("writer closed");
    this.closed = true;
    const buffer = Buffer.allocUnsafe(1 << 20);
    while (this.hashed < size) {
      const { bytesRead } = await this.handle.read(buffer, 0, Math.min(buffer.length, size - this.hashed), this.hashed);
      if (bytesRead === 0) break;
      this.hash.update(buffer.subarray(0, bytesRead));
      this.hashed += bytesRead;
    }
    await this.handle.close();
    const actual = `${digestAlgorithm(this.digest)}:${this.hash.digest("hex")}`;
    if (actual !== this.digest || this.hashed !== size) {
      await unlink(this.file).catch(() => undefined);
      throw new DigestMismatchError(`content for ${this.digest} hashed to ${actual}`);
    }
    await this.store.adopt(this.digest, this.file, size);
  }

  async abort(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.handle.close().catch(() => undefined);
    await unlink(this.file).catch(() => undefined);
  }
}
