import { pieceBounds, type Metainfo } from "../../shared/p2p/metainfo.js";
import { pieceHashSync } from "../store/piece-hash.js";
import type { FillSink } from "../store/download.js";

/**
 * A swarm download's pieces on their way to disk: each checked against the metainfo, written into
 * the blob's partial file, recorded (so a restart resumes), and the verified prefix handed to
 * readers. Also takes over what an interrupted run left, verifying each piece again.
 */
export class PieceStore {
  private contiguous = 0;

  constructor(
    private readonly sink: FillSink,
    private readonly metainfo: Metainfo,
  ) {}

  /** Node's hash on this thread: Web Crypto would copy each piece and wipe the copy (5% of CPU). */
  async verify(index: number, bytes: Uint8Array): Promise<boolean> {
    return pieceHashSync(bytes, this.metainfo) === this.metainfo.pieces[index];
  }

  async write(index: number, bytes: Uint8Array): Promise<void> {
    const { start } = pieceBounds(index, this.metainfo.size, this.metainfo.pieceLength);
    await this.sink.writeAt(start, bytes);
    await this.sink.record(index);
    this.sink.verified?.(index);
  }

  /** Readers may have the blob up to the first piece not yet `have`. */
  advance(have: { has(index: number): boolean }): void {
    const pieces = this.metainfo.pieces.length;
    while (this.contiguous < pieces && have.has(this.contiguous)) this.contiguous++;
    this.sink.advance(Math.min(this.metainfo.size, this.contiguous * this.metainfo.pieceLength));
  }

  /** The blob is whole: readers may have all of it. */
  complete(): void {
    this.sink.advance(this.metainfo.size);
  }

  async read(index: number, begin: number, length: number, into?: Buffer): Promise<Buffer> {
    const { start } = pieceBounds(index, this.metainfo.size, this.metainfo.pieceLength);
    return this.sink.readAt(start + begin, length, into);
  }

  /**
   * The pieces an interrupted download of this blob left on disk that still verify (a crash may
   * have recorded a piece whose bytes never reached the disk). `stopped` ends the check early.
   */
  async resume(stopped: () => boolean): Promise<{ recorded: number; kept: number[] }> {
    const { metainfo } = this;
    const recorded = [...new Set(this.sink.recorded())].filter((i) => Number.isInteger(i) && i >= 0 && i < metainfo.pieces.length);
    const kept: number[] = [];
    for (const index of recorded) {
      if (stopped()) break;
      const { start, end } = pieceBounds(index, metainfo.size, metainfo.pieceLength);
      const bytes = await this.sink.readAt(start, end - start).catch(() => undefined);
      if (bytes && (await this.verify(index, bytes))) {
        kept.push(index);
        this.sink.verified?.(index);
      }
    }
    const have = new Set(kept);
    this.advance(have);
    return { recorded: recorded.length, kept };
  }
}
