import { MAX_BLOCK_BYTES } from "../../shared/p2p/wire/frames.js";
import type { BufferPool } from "./buffer-pool.js";

interface Assembly {
  buffer: Buffer;
  received: number;
  blocks: number;
}

export type BlockResult =
  | { kind: "partial" }
  | { kind: "complete"; buffer: Buffer }
  /** Data for a request we no longer have (a cancelled duplicate arriving late): harmless. */
  | { kind: "stale" }
  /** Data that was never asked for, or that does not fit its piece: the peer misbehaves. */
  | { kind: "bad" };

/**
 * Pieces being received from peers, block by block, into pooled buffers: one per (piece, peer)
 * request, so endgame duplicates do not share bytes. The decoder writes blocks straight into
 * them (`target`); a buffer goes back to the pool when its piece is dropped, or by the caller
 * once a completed piece is verified and written.
 */
export class PieceAssemblies {
  private readonly byPiece = new Map<number, Map<string, Assembly>>();
  /**
   * Whether `peer`'s connection may still read into `buffer` (its next socket read was pointed at
   * the block being received: PeerConnection.dial). Such a buffer is left to the garbage collector
   * when its piece is given up, never pooled: another piece would get the late bytes.
   */
  reading: ((peer: string, buffer: Buffer) => boolean) | undefined;

  constructor(
    private readonly pool: BufferPool,
    private readonly pieceCount: number,
  ) {}

  /** Starts receiving piece `index` (of `length` bytes) from `peer`; returns its block count. */
  start(index: number, peer: string, length: number): number {
    const blocks = Math.ceil(length / MAX_BLOCK_BYTES);
    let byPeer = this.byPiece.get(index);
    if (!byPeer) this.byPiece.set(index, (byPeer = new Map()));
    const old = byPeer.get(peer);
    if (old) this.release(peer, old.buffer);
    byPeer.set(peer, { buffer: this.pool.take(length), received: 0, blocks });
    return blocks;
  }

  /** Where the decoder should put a block `peer` sends, when it fits a request of ours. */
  target(peer: string, index: number, begin: number, length: number): Uint8Array | undefined {
    const assembly = this.byPiece.get(index)?.get(peer);
    if (!assembly || begin % MAX_BLOCK_BYTES !== 0 || begin + length > assembly.buffer.length) return undefined;
    return assembly.buffer.subarray(begin, begin + length);
  }

  block(peer: string, index: number, begin: number, data: Uint8Array): BlockResult {
    const byPeer = this.byPiece.get(index);
    const assembly = byPeer?.get(peer);
    if (!assembly) return index < this.pieceCount ? { kind: "stale" } : { kind: "bad" };
    if (begin + data.length > assembly.buffer.length || begin % MAX_BLOCK_BYTES !== 0) return { kind: "bad" };
    // The decoder may have put the block in place already (see target).
    if (data.buffer !== assembly.buffer.buffer || data.byteOffset !== assembly.buffer.byteOffset + begin) assembly.buffer.set(data, begin);
    assembly.received++;
    if (assembly.received < assembly.blocks) return { kind: "partial" };
    byPeer!.delete(peer);
    if (byPeer!.size === 0) this.byPiece.delete(index);
    return { kind: "complete", buffer: assembly.buffer };
  }

  drop(index: number, peer: string): void {
    const byPeer = this.byPiece.get(index);
    const assembly = byPeer?.get(peer);
    if (!assembly) return;
    this.release(peer, assembly.buffer);
    byPeer!.delete(peer);
    if (byPeer!.size === 0) this.byPiece.delete(index);
  }

  dropPeer(peer: string): void {
    for (const index of [...this.byPiece.keys()]) this.drop(index, peer);
  }

  dropAll(): void {
    for (const byPeer of this.byPiece.values()) for (const [peer, a] of byPeer) this.release(peer, a.buffer);
    this.byPiece.clear();
  }

  private release(peer: string, buffer: Buffer): void {
    if (!this.reading?.(peer, buffer)) this.pool.give(buffer);
  }
}
