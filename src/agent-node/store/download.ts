import { EventEmitter } from "node:events";
import { open, type FileHandle } from "node:fs/promises";
import { Readable } from "node:stream";
import type { Logger } from "pino";
import type { Digest } from "../../shared/oci/digest.js";
import type { DiskStore } from "./disk-store.js";

/** A sequential source of a blob's bytes (the edge's HTTP body). */
export interface BlobSource {
  size: number;
  body: AsyncIterable<Uint8Array>;
}

/** Where a filler puts bytes: anywhere in the blob, telling how much of its start is verified. */
export interface FillSink {
  writeAt(position: number, bytes: Uint8Array): Promise<void>;
  /** Reads into `into` when given (its length is the length read). */
  readAt(position: number, length: number, into?: Buffer): Promise<Buffer>;
  /** Bytes [0, n) are written and verified: readers may have them. */
  advance(contiguousBytes: number): void;
  /** Piece `index` (of the filler's `pieceLength`) is written and verified: Range readers may have it. */
  verified?(index: number): void;
  /** Pieces an earlier, interrupted run wrote and verified (verify them again before use). */
  recorded(): readonly number[];
  /** Piece `index` is written and verified: remembered across a crash or restart. */
  record(index: number): Promise<void>;
}

/**
 * A source that fills the blob out of order (the P2P swarm session). It verifies every piece
 * against the blob's metainfo before writing it (and pieces left by an interrupted run before
 * using them), so the store takes its bytes without hashing the whole blob again.
 */
export interface BlobFiller {
  size: number;
  /** The piece length `FillSink.verified` counts in. */
  pieceLength?: number;
  fill(sink: FillSink): Promise<void>;
  /**
   * A reader waits for bytes [start, end]: fetch their pieces first. `whole`: a read of the whole
   * blob (it is then fetched to the end, whatever the lazy-completion setting). Returns the
   * function that takes the wish back.
   */
  prioritize?(start: number, end: number, whole: boolean): () => void;
}

/**
 * A filler stopped on purpose with the blob held in part (a lazy copy no reader used for a while):
 * its pieces stay in the store, parked, for a later read to resume from.
 */
export class PartialParked extends Error {
  override name = "PartialParked";
}

export interface DownloadHooks {
  /** Bytes that arrived from the source, for metrics. */
  onBytes?(bytes: number): void;
  onDone?(size: number): void;
}

/**
 * One in-flight fetch of a blob into the store, shared by every request that wants it. Readers
 * follow the partial file as it grows, so a client gets the first bytes while the rest arrive; if
 * the digest does not match at the end, every reader's stream is destroyed (the transfer aborts,
 * the client never sees a complete wrong blob) and nothing enters the store.
 */
export class Download extends EventEmitter {
  size: number | undefined;
  written = 0;
  file: string | undefined;
  state: "starting" | "running" | "done" | "failed" = "starting";
  error: Error | undefined;
  /** The filler (swarm) source, once opened: it knows pieces; undefined for a sequential source. */
  private filler: BlobFiller | undefined;
  /** Pieces a filler verified (past the contiguous prefix too): Range readers get them at once. */
  private readonly verifiedPieces = new Set<number>();
  /** Resolves with the blob size once the source answered; rejects if it could not be opened. */
  readonly ready: Promise<number>;
  readonly finished: Promise<void>;

  constructor(
    readonly digest: Digest,
    private readonly store: DiskStore,
    openSource: () => Promise<BlobSource | BlobFiller>,
    hooks: DownloadHooks,
    log: Logger,
  ) {
    super();
    this.setMaxListeners(0);
    let resolveReady!: (size: number) => void;
    let rejectReady!: (error: Error) => void;
    this.ready = new Promise((resolve, reject) => {
      resolveReady = resolve;
      rejectReady = reject;
    });
    this.ready.catch(() => undefined);
    this.finished = this.run(openSource, hooks, resolveReady, rejectReady).catch((error: Error) => {
      this.state = "failed";
      this.error = error;
      rejectReady(error);
      if (error instanceof PartialParked) log.info({ digest, reason: error.message }, "partial copy parked");
      else log.warn({ digest, err: error.message }, "download failed");
      this.emit("progress");
      throw error;
    });
    this.finished.catch(() => undefined);
  }

  private async run(
    openSource: () => Promise<BlobSource | BlobFiller>,
    hooks: DownloadHooks,
    resolveReady: (size: number) => void,
    rejectReady: (error: Error) => void,
  ): Promise<void> {
    const source = await openSource().catch((error: Error) => {
      rejectReady(error);
      throw error;
    });
    // A filler (swarm) download can resume from the pieces an interrupted one left.
    const resumable = "fill" in source;
    const writer = await this.store.createWriter(this.digest, { resumable, piecesVerified: resumable });
    this.file = writer.file;
    this.size = source.size;
    this.state = "running";
    if ("fill" in source) this.filler = source;
    resolveReady(source.size);
    try {
      if ("fill" in source) {
        const pieceLength = source.pieceLength;
        await source.fill({
          verified: (index) => {
            if (!pieceLength || this.verifiedPieces.has(index)) return;
            this.verifiedPieces.add(index);
            // A partial blob's verified bytes count against the store's capacity.
            this.store.notePartial(this.digest, Math.min(pieceLength, source.size - index * pieceLength));
            this.emit("progress");
          },
          writeAt: (position, bytes) => writer.writeAt(position, bytes),
          readAt: (position, length, into) => writer.readAt(position, length, into),
          recorded: () => writer.recorded,
          record: (index) => writer.recordPiece(index),
          advance: (n) => {
            if (n > this.written) {
              this.written = n;
              this.emit("progress");
            }
          },
        });
        if (this.written !== source.size) throw new Error(`filler stopped at ${this.written} of ${source.size} bytes`);
      } else {
        for await (const chunk of source.body) {
          if (this.written + chunk.byteLength > source.size) throw new Error(`source sent more than ${source.size} bytes`);
          await writer.write(chunk);
          this.written += chunk.byteLength;
          hooks.onBytes?.(chunk.byteLength);
          this.emit("progress");
        }
        if (this.written !== source.size) throw new Error(`source ended after ${this.written} of ${source.size} bytes`);
      }
      this.store.dropPartial(this.digest);
      await writer.commit(source.size);
    } catch (error) {
      await writer.abort();
      // A resumable file stays, with its verified pieces: parked, counted, evictable.
      if (resumable) this.store.parkPartial(this.digest);
      else this.store.dropPartial(this.digest);
      throw error;
    }
    this.state = "done";
    hooks.onDone?.(source.size);
    this.emit("progress");
  }

  /**
   * Waits until bytes past `position` may be handed out and returns where they stop (exclusive,
   * at most end + 1); throws if the download failed. The last bytes of a blob wait until it
   * verified: a client that got every byte must have got the right ones. A filler's pieces are
   * each verified against the metainfo: any verified piece may be handed out at once, past the
   * contiguous prefix too (a Range read of a blob still arriving).
   */
  async readableUpTo(position: number, end: number): Promise<number> {
    await this.ready;
    for (;;) {
      if (this.state === "failed") throw this.error ?? new Error("download failed");
      const available = Math.min(this.state === "done" ? this.size! : this.reach(position), end + 1);
      if (available > position) {
        if (available === end + 1 && this.state !== "done" && !this.filler) {
          await this.finished;
          continue;
        }
        return available;
      }
      await new Promise<void>((resolve) => this.once("progress", resolve));
    }
  }

  /** Where the verified bytes that `position` is in stop (the prefix, or a run of verified pieces). */
  private reach(position: number): number {
    const pieceLength = this.filler?.pieceLength;
    if (position < this.written || !pieceLength) return this.written;
    let index = Math.floor(position / pieceLength);
    if (!this.verifiedPieces.has(index)) return this.written;
    while (this.verifiedPieces.has(index)) index++;
    return Math.min(this.size!, index * pieceLength);
  }

  /**
   * A reader waits for bytes [start, end]: their pieces go first (a swarm download; a sequential
   * one arrives in order anyway). Returns the function that takes the wish back.
   */
  prioritize(start: number, end: number, whole = false): () => void {
    if (this.state !== "running" || !this.filler?.prioritize) return () => undefined;
    return this.filler.prioritize(start, end, whole);
  }

  /** Opens the blob's file for reading, wherever it is now (partial, or in the store). */
  openForReading(): Promise<FileHandle> {
    return this.ready.then(() => this.openFile());
  }

  /** Bytes [start, end] as they become available (end inclusive). */
  createReader(start: number, end: number): Readable {
    return Readable.from(this.follow(start, end), { objectMode: false, highWaterMark: 1 << 20 });
  }

  private async *follow(start: number, end: number): AsyncGenerator<Buffer> {
    let handle: FileHandle | undefined;
    try {
      let position = start;
      while (position <= end) {
        const limit = await this.readableUpTo(position, end);
        handle ??= await this.openFile();
        const buffer = Buffer.allocUnsafe(Math.min(limit - position, 1 << 20));
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
        if (bytesRead === 0) throw new Error("partial file shorter than reported");
        position += bytesRead;
        yield bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead);
      }
    } finally {
      await handle?.close();
    }
  }

  private async openFile(): Promise<FileHandle> {
    // The open descriptor survives the rename into the store at commit.
    if (this.state !== "done" && this.file) {
      try {
        return await open(this.file, "r");
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
        await this.finished; // renamed meanwhile: read the stored blob
      }
    }
    return open(this.store.blobPath(this.digest), "r");
  }
}

/** Deduplicates fetches: concurrent requests for one digest share one Download. */
export class DownloadManager {
  private readonly inflight = new Map<Digest, Download>();

  constructor(
    private readonly store: DiskStore,
    private readonly log: Logger,
  ) {}

  fetch(digest: Digest, openSource: () => Promise<BlobSource | BlobFiller>, hooks: DownloadHooks = {}): Download {
    const existing = this.inflight.get(digest);
    if (existing) return existing;
    const download = new Download(digest, this.store, openSource, hooks, this.log);
    this.inflight.set(digest, download);
    const forget = () => {
      if (this.inflight.get(digest) === download) this.inflight.delete(digest);
    };
    download.finished.then(forget, forget);
    return download;
  }

  active(): Download[] {
    return [...this.inflight.values()];
  }
}
