import { createHash, randomUUID, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, open, readdir, rename, rm, stat, unlink, utimes, writeFile, readFile, type FileHandle } from "node:fs/promises";
import path from "node:path";
import type { Logger } from "pino";
import { digestAlgorithm, digestHex, type Digest } from "../../shared/oci/digest.js";
import { MetainfoSchema, type Metainfo } from "../../shared/p2p/metainfo.js";
import { writeFileAtomic } from "../fs/write-atomic.js";

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
  /** Blobs held in part (lazy reads' pieces, downloads under way or parked), and their verified bytes. */
  partialBlobs: number;
  partialBytes: number;
}

/**
 * A blob held in part: the verified pieces of a swarm download, in its resumable partial file.
 * Active while its download runs (not evictable); parked once the download stopped short (a lazy
 * copy no reader used for a while, an interrupted pull, a restart): then it waits to be resumed
 * and is evicted, least recently used first, beside whole blobs.
 */
interface PartialEntry {
  bytes: number;
  active: boolean;
  lastAccess: number;
}

/** Thrown when a download's bytes do not hash to the digest they were fetched for. */
export class DigestMismatchError extends Error {
  override name = "DigestMismatchError";
}

/**
 * The agent's content-addressed disk store. A blob is written to a partial file and renamed into
 * `blobs/<alg>/<hex>` only once its digest matches, so a visible blob is always a verified one.
 * Capacity is enforced by least-recently-used eviction that never touches a pinned (being read)
 * blob, or a partial blob whose download runs. Survives restarts: the index is rebuilt from the
 * directory; partial files are dropped, but for swarm downloads', which are kept (parked) to resume.
 */
export class DiskStore {
  private readonly entries = new Map<Digest, StoreEntry>();
  private readonly pins = new Map<Digest, number>();
  private bytes = 0;
  /** Blobs held in part (see PartialEntry, notePartial). */
  private readonly partials = new Map<Digest, PartialEntry>();
  private partialBytes = 0;
  /** Parked partial files being deleted (a download of the blob waits for it before it opens them). */
  private readonly removingPartials = new Map<Digest, Promise<void>>();
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
   * Partial files from before a restart: a swarm download's file and its progress log are kept,
   * parked, so a later read resumes it (its pieces are verified again before use); they count
   * against the capacity by the disk blocks the (sparse) file takes. Anything else, a sequential
   * download's file or half a pair, goes.
   */
  private async sweepPartials(): Promise<void> {
    const folder = path.join(this.options.dir, "partial");
    const names = new Set(await readdir(folder));
    for (const name of names) {
      const match = /^(sha256|sha512)-([0-9a-f]+)\.(resume|pieces)$/.exec(name);
      const stem = match ? `${match[1]}-${match[2]}` : undefined;
      if (!stem || !names.has(`${stem}.resume`) || !names.has(`${stem}.pieces`)) {
        await rm(path.join(folder, name), { force: true });
        continue;
      }
      if (match![3] !== "resume") continue;
      const info = await stat(path.join(folder, name));
      const bytes = Math.min(info.size, info.blocks * 512);
      this.partials.set(`${match![1]}:${match![2]}` as Digest, { bytes, active: false, lastAccess: info.mtimeMs });
      this.partialBytes += bytes;
    }
    if (this.partials.size > 0) this.options.log.info({ partials: this.partials.size, bytes: this.partialBytes }, "kept partial downloads to resume");
  }

  private partialStem(digest: Digest): string {
    return path.join(this.options.dir, "partial", `${digestAlgorithm(digest)}-${digestHex(digest)}`);
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
   * stay partial for good) are on disk: they count against the capacity, whole blobs and parked
   * partial ones making room.
   */
  notePartial(digest: Digest, bytes: number): void {
    let entry = this.partials.get(digest);
    if (!entry) this.partials.set(digest, (entry = { bytes: 0, active: true, lastAccess: this.now() }));
    entry.bytes += bytes;
    entry.active = true;
    entry.lastAccess = this.now();
    this.partialBytes += bytes;
    if (this.bytes + this.partialBytes > this.options.capacityBytes) void this.evict();
  }

  /** The partial blob is committed (counted as a whole blob from now on) or given up. */
  dropPartial(digest: Digest): void {
    this.partialBytes -= this.partials.get(digest)?.bytes ?? 0;
    this.partials.delete(digest);
  }

  /**
   * The download of a partial blob stopped short and its resumable file stays: its bytes go on
   * counting, and it may be evicted now (least recently used first, beside whole blobs).
   */
  parkPartial(digest: Digest): void {
    const entry = this.partials.get(digest);
    if (!entry) return;
    entry.active = false;
    entry.lastAccess = this.now();
    if (this.bytes + this.partialBytes > this.options.capacityBytes) void this.evict();
  }

  /** A download resumes a parked partial blob: it counts its pieces again as it verifies them. */
  private unparkPartial(digest: Digest): void {
    const entry = this.partials.get(digest);
    if (!entry || entry.active) return;
    this.partialBytes -= entry.bytes;
    this.partials.delete(digest);
  }

  private removeParkedPartial(digest: Digest): Promise<void> {
    const entry = this.partials.get(digest);
    if (!entry || entry.active) return Promise.resolve();
    this.dropPartial(digest);
    const stem = this.partialStem(digest);
    const removal = (async () => {
      await rm(`${stem}.resume`, { force: true });
      await rm(`${stem}.pieces`, { force: true });
      if (!this.entries.has(digest)) await unlink(`${this.blobPath(digest)}.metainfo.json`).catch(() => undefined);
    })().finally(() => this.removingPartials.delete(digest));
    this.removingPartials.set(digest, removal);
    return removal;
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
    const stem = this.partialStem(digest);
    if (!options.resumable) {
      const file = `${stem}-${randomUUID()}`;
      return new BlobWriter(this, digest, file, await open(file, "w+"));
    }
    this.unparkPartial(digest);
    await this.removingPartials.get(digest);
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

  /**
   * Drops least-recently-used, unpinned blobs and parked partial ones until the store fits its
   * capacity. A partial blob whose download runs, and a pinned blob, stay.
   */
  async evict(): Promise<Digest[]> {
    const evicted: Digest[] = [];
    const capacity = this.options.capacityBytes;
    const over = () => this.bytes + this.partialBytes > capacity;
    if (!over()) return evicted;
    const candidates: { digest: Digest; lastAccess: number; partial: boolean }[] = [];
    for (const e of this.entries.values()) if (!this.pins.has(e.digest)) candidates.push({ digest: e.digest, lastAccess: e.lastAccess, partial: false });
    for (const [digest, p] of this.partials) if (!p.active) candidates.push({ digest, lastAccess: p.lastAccess, partial: true });
    candidates.sort((a, b) => a.lastAccess - b.lastAccess);
    let partials = 0;
    for (const candidate of candidates) {
      if (!over()) break;
      if (candidate.partial) {
        // It may have been resumed meanwhile (then it is active, and stays).
        if (this.partials.get(candidate.digest)?.active !== false) continue;
        await this.removeParkedPartial(candidate.digest);
        partials++;
      } else {
        if (this.pins.has(candidate.digest) || !this.entries.has(candidate.digest)) continue;
        await this.remove(candidate.digest);
      }
      evicted.push(candidate.digest);
    }
    if (evicted.length > 0) this.options.log.info({ evicted: evicted.length, partial: partials, bytes: this.bytes, partialBytes: this.partialBytes }, "store eviction");
    if (over()) {
      this.options.log.warn({ bytes: this.bytes, partialBytes: this.partialBytes, capacity }, "store over capacity: remaining blobs are in use");
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
