import { createHash, randomUUID, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, open, readdir, rename, rm, stat, unlink, utimes, writeFile, readFile, type FileHandle } from "node:fs/promises";
import path from "node:path";
import type { Logger } from "pino";
import { digestAlgorithm, digestHex, type Digest } from "../../shared/oci/digest.js";
import { MetainfoSchema, type Metainfo } from "../../shared/p2p/metainfo.js";
import { writeFileAtomic } from "../fs/write-atomic.js";

/** How long a stopped swarm download's partial file is kept for resuming. */
const RESUMABLE_MAX_AGE_MS = 24 * 3600 * 1000;

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
  /** Bytes of whole blobs and of partial ones' verified pieces. */
  bytes: number;
  capacityBytes: number;
  blobs: number;
  pinned: number;
  /** Blobs held in part (lazy reads' pieces, downloads under way), and their verified bytes. */
  partialBlobs: number;
  partialBytes: number;
}

/** Thrown when a download's bytes do not hash to the digest they were fetched for. */
export class DigestMismatchError extends Error {
  override name = "DigestMismatchError";
}

/**
 * The agent's content-addressed disk store. A blob is written to a partial file and renamed into
 * `blobs/<alg>/<hex>` only once its digest matches, so a visible blob is always a verified one.
 * Capacity is enforced by least-recently-used eviction that never touches a pinned (being read)
 * blob. Survives restarts: the index is rebuilt from the directory; partial files are dropped,
 * but for swarm downloads', which resume.
 */
export class DiskStore {
  private readonly entries = new Map<Digest, StoreEntry>();
  private readonly pins = new Map<Digest, number>();
  private bytes = 0;
  /** Verified bytes of blobs being filled piece by piece (see notePartial). */
  private readonly partials = new Map<Digest, number>();
  private partialBytes = 0;
  private readonly now: () => number;

  constructor(private readonly options: StoreOptions) {
    this.now = options.now ?? Date.now;
  }

  get dir(): string {
    return this.options.dir;
  }

  async open(): Promise<void> {
    const { dir } = this.options;
    await mkdir(path.join(dir, "partial"), { recursive: true });
    await this.sweepPartials();
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

  /**
   * Partial files from before a restart: a swarm download's file and its progress log are kept for
   * a day so the download resumes (its pieces are verified again before use); anything else, a
   * sequential download's file or a day-old resumable one, goes.
   */
  private async sweepPartials(): Promise<void> {
    const folder = path.join(this.options.dir, "partial");
    const names = await readdir(folder);
    const kept: string[] = [];
    const resumable = async (base: string) => {
      if (!names.includes(`${base}.resume`) || !names.includes(`${base}.pieces`)) return false;
      return Date.now() - (await stat(path.join(folder, `${base}.resume`))).mtimeMs < RESUMABLE_MAX_AGE_MS;
    };
    for (const name of names) {
      const match = /^(.*)\.(resume|pieces)$/.exec(name);
      if (match && (await resumable(match[1]!))) kept.push(name);
      else await rm(path.join(folder, name), { force: true });
    }
    if (kept.length > 0) this.options.log.info({ partials: kept.length / 2 }, "kept partial downloads to resume");
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
    return {
      bytes: this.bytes + this.partialBytes,
      capacityBytes: this.options.capacityBytes,
      blobs: this.entries.size,
      pinned: this.pins.size,
      partialBlobs: this.partials.size,
      partialBytes: this.partialBytes,
    };
  }

  /**
   * `bytes` more of a partial blob (a swarm download's verified pieces: a lazy read's copy may
   * stay partial for good) are on disk: they count against the capacity, whole blobs making room.
   */
  notePartial(digest: Digest, bytes: number): void {
    this.partials.set(digest, (this.partials.get(digest) ?? 0) + bytes);
    this.partialBytes += bytes;
    if (this.bytes + this.partialBytes > this.options.capacityBytes) void this.evict();
  }

  /** The partial blob is committed (counted as a whole blob from now on) or given up. */
  dropPartial(digest: Digest): void {
    this.partialBytes -= this.partials.get(digest) ?? 0;
    this.partials.delete(digest);
  }

  list(): StoreEntry[] {
    return [...this.entries.values()];
  }

  /**
   * Starts writing a blob; the writer hashes as it goes and only `commit()` makes it visible.
   * `resumable` (a download filled piece by piece): the partial file has a fixed name and a log of
   * the pieces verified so far, both kept when the download stops short, so a later download of the
   * blob (after a crash or restart too) starts from them.
   * `piecesVerified`: the filler checks every piece against the blob's metainfo before writing it
   * (see BlobFiller), so the writer does not hash the blob again (see BlobWriter).
   */
  async createWriter(digest: Digest, options: { resumable?: boolean; piecesVerified?: boolean } = {}): Promise<BlobWriter> {
    const stem = path.join(this.options.dir, "partial", `${digestAlgorithm(digest)}-${digestHex(digest)}`);
    if (!options.resumable) {
      const file = `${stem}-${randomUUID()}`;
      return new BlobWriter(this, digest, file, await open(file, "w+"));
    }
    const file = `${stem}.resume`;
    const handle = await open(file, "r+").catch(async (error: NodeJS.ErrnoException) => {
      if (error.code !== "ENOENT") throw error;
      return open(file, "w+");
    });
    const log = await ProgressLog.open(`${stem}.pieces`);
    return new BlobWriter(this, digest, file, handle, log, options.piecesVerified);
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
    await writeFileAtomic(file, JSON.stringify(metainfo));
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

  /**
   * Hashes a stored blob again. A blob whose bytes no longer match its digest (a damaged disk, a
   * hand edit) is dropped, so the next request fetches it anew instead of serving it.
   */
  async verify(digest: Digest): Promise<"ok" | "damaged" | "absent"> {
    if (!this.entries.has(digest)) return "absent";
    const hash = createHash(digestAlgorithm(digest));
    try {
      for await (const chunk of createReadStream(this.blobPath(digest), { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
    } catch {
      await this.remove(digest);
      return "damaged";
    }
    if (`${digestAlgorithm(digest)}:${hash.digest("hex")}` === digest) return "ok";
    this.options.log.warn({ digest }, "stored blob is damaged: dropped, it will be fetched again");
    await this.remove(digest);
    return "damaged";
  }

  /** Drops least-recently-used, unpinned blobs until the store fits its capacity. */
  async evict(): Promise<Digest[]> {
    const evicted: Digest[] = [];
    const capacity = this.options.capacityBytes - this.partialBytes;
    if (this.bytes <= capacity) return evicted;
    const candidates = [...this.entries.values()].filter((e) => !this.pins.has(e.digest)).sort((a, b) => a.lastAccess - b.lastAccess);
    for (const entry of candidates) {
      if (this.bytes <= capacity) break;
      await this.remove(entry.digest);
      evicted.push(entry.digest);
    }
    if (evicted.length > 0) this.options.log.info({ evicted: evicted.length, bytes: this.bytes }, "store eviction");
    if (this.bytes > capacity) {
      this.options.log.warn({ bytes: this.bytes, partialBytes: this.partialBytes, capacity: this.options.capacityBytes }, "store over capacity: remaining blobs are in use");
    }
    return evicted;
  }
}

/**
 * Writes one blob to a partial file; `commit` verifies the digest and renames, `abort` deletes.
 * Bytes written in order are hashed as they come; bytes written out of order (pieces from peers)
 * are hashed from the file as the verified prefix grows (`hashUpTo`), so little is left to hash
 * at commit, when the client waits for the verdict.
 *
 * A writer whose bytes were verified piece by piece (`piecesVerified`: a swarm download, every
 * piece checked against the metainfo the edge computed from the bytes whose digest it checked)
 * does not hash them again: the whole-blob SHA-256 was a second pass over every byte (a quarter of
 * an agent's CPU pulling at full speed, half of it reading the pieces back from the file).
 */
export class BlobWriter {
  private readonly hash: Hash;
  /** Pieces verified in an earlier run of this download (resumable writers): to be checked again. */
  readonly recorded: readonly number[];
  /** Bytes [0, hashed) are in the running hash. */
  private hashed = 0;
  /** Catching up on bytes written out of order, one read at a time (see hashUpTo). */
  private catchingUp: Promise<void> = Promise.resolve();
  /** Catch-ups queued or running: while any is, writes leave the running hash alone. */
  private catchUps = 0;
  private catchUpError: Error | undefined;
  /** The read buffer for catching up (one at a time: they run in turn). */
  private hashBuffer: Buffer | undefined;
  /** Highest byte written + 1. */
  written = 0;
  private closed = false;

  constructor(
    private readonly store: DiskStore,
    readonly digest: Digest,
    readonly file: string,
    private readonly handle: FileHandle,
    private readonly progress?: ProgressLog,
    private readonly piecesVerified = false,
  ) {
    this.hash = createHash(digestAlgorithm(digest));
    this.recorded = progress?.recorded ?? [];
  }

  /** Notes that piece `index` is written and verified (resumable writers; a no-op otherwise). */
  async recordPiece(index: number): Promise<void> {
    if (!this.closed) await this.progress?.append(index);
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
    if (!this.piecesVerified && position === this.hashed && this.catchUps === 0) {
      this.hash.update(chunk);
      this.hashed += chunk.byteLength;
    }
    this.written = Math.max(this.written, position + chunk.byteLength);
  }

  /** Reads bytes back (to serve verified pieces to peers while the rest arrives). */
  async readAt(position: number, length: number, into?: Buffer): Promise<Buffer> {
    const buffer = into && into.length === length ? into : Buffer.allocUnsafe(length);
    const { bytesRead } = await this.handle.read(buffer, 0, length, position);
    if (bytesRead !== length) throw new Error("short read from a partial blob");
    return buffer;
  }

  /**
   * Bytes [0, limit) are written (and verified piece by piece): hash what of them the running
   * hash has not seen, reading them back in the background.
   */
  hashUpTo(limit: number): void {
    if (this.closed || this.piecesVerified || limit <= this.hashed) return;
    this.catchUps++;
    this.catchingUp = this.catchingUp
      .then(() => this.readIntoHash(limit))
      .catch((error: Error) => {
        this.catchUpError ??= error;
      })
      .finally(() => {
        this.catchUps--;
      });
  }

  private async readIntoHash(limit: number): Promise<void> {
    const buffer = (this.hashBuffer ??= Buffer.allocUnsafe(1 << 20));
    while (this.hashed < limit) {
      const { bytesRead } = await this.handle.read(buffer, 0, Math.min(buffer.length, limit - this.hashed), this.hashed);
      if (bytesRead === 0) break;
      this.hash.update(buffer.subarray(0, bytesRead));
      this.hashed += bytesRead;
    }
  }

  async commit(size = this.written): Promise<void> {
    if (this.closed) throw new Error("writer closed");
    this.closed = true;
    await this.catchingUp;
    if (this.catchUpError) {
      await this.handle.close().catch(() => undefined);
      throw this.catchUpError;
    }
    if (this.piecesVerified) {
      await this.handle.close();
      if (this.written !== size) {
        await this.progress?.close();
        throw new Error(`${this.digest}: ${this.written} of ${size} bytes written`);
      }
      await this.store.adopt(this.digest, this.file, size);
      return this.progress?.remove();
    }
    await this.readIntoHash(size);
    await this.handle.close();
    await this.progress?.close();
    const actual = `${digestAlgorithm(this.digest)}:${this.hash.digest("hex")}`;
    if (actual !== this.digest || this.hashed !== size) {
      await unlink(this.file).catch(() => undefined);
      await this.progress?.remove();
      throw new DigestMismatchError(`content for ${this.digest} hashed to ${actual}`);
    }
    await this.store.adopt(this.digest, this.file, size);
    await this.progress?.remove();
  }

  /**
   * The download stopped short. A plain partial file is deleted; a resumable one is kept with its
   * progress log (every piece in it is verified again when the download resumes).
   */
  async abort(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.handle.close().catch(() => undefined);
    if (this.progress) return this.progress.close();
    await unlink(this.file).catch(() => undefined);
  }
}

/**
 * A resumable download's progress: the indexes of its verified pieces, appended as 4-byte
 * big-endian entries after each piece is written. A crash can leave a torn last entry (ignored) or
 * list a piece whose bytes never reached the disk (caught: pieces are verified again on resume).
 */
class ProgressLog {
  private constructor(
    private readonly file: string,
    private readonly handle: FileHandle,
    readonly recorded: number[],
  ) {}

  static async open(file: string): Promise<ProgressLog> {
    const bytes = await readFile(file).catch(() => Buffer.alloc(0));
    const recorded: number[] = [];
    for (let at = 0; at + 4 <= bytes.length; at += 4) recorded.push(bytes.readUInt32BE(at));
    // Drop a torn tail so new entries stay aligned.
    const handle = await open(file, "a");
    if (bytes.length % 4 !== 0) await handle.truncate(bytes.length - (bytes.length % 4));
    return new ProgressLog(file, handle, recorded);
  }

  async append(index: number): Promise<void> {
    const entry = Buffer.alloc(4);
    entry.writeUInt32BE(index);
    await this.handle.write(entry);
  }

  async close(): Promise<void> {
    await this.handle.close().catch(() => undefined);
  }

  async remove(): Promise<void> {
    await this.close();
    await unlink(this.file).catch(() => undefined);
  }
}
