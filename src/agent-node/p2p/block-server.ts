import type { Metainfo } from "../../shared/p2p/metainfo.js";
import { pieceBounds } from "../../shared/p2p/metainfo.js";
import { MAX_BLOCK_BYTES, WIRE_ERROR, type Frame } from "../../shared/p2p/wire/frames.js";
import type { AgentMetrics } from "../metrics.js";
import type { PeerConnection } from "./peer-connection.js";
import type { Bandwidth } from "./token-bucket.js";

/** Blocks a peer may have asked us for and not yet received before it is refused as abusive. */
export const MAX_QUEUED_REQUESTS = 256;

export interface BlockServerOptions {
  metainfo: Metainfo;
  /** Reads a verified block into `into` (exactly `length` bytes), or undefined when we lack it. */
  read: (index: number, begin: number, length: number, into: Buffer) => Promise<Buffer | undefined>;
  metrics: AgentMetrics;
  bandwidth?: Bandwidth;
  maxQueued?: number;
}

type Request = Extract<Frame, { type: "request" }>;

/**
 * Serves one connection's block requests, whichever side dialled: in order, one at a time (a slow
 * peer is slowed by its own socket), at most `maxQueued` waiting; a `cancel` takes a queued
 * request back. With an egress limit, a request our uplink cannot take soon is rejected at once
 * (the peer asks someone else) — except the later blocks of a piece whose first block we took on.
 */
export class BlockServer {
  private readonly queue: Request[] = [];
  private serving = false;
  private readonly acceptedPieces = new Set<number>();
  private readonly maxQueued: number;

  constructor(
    private readonly connection: PeerConnection,
    private readonly options: BlockServerOptions,
  ) {
    this.maxQueued = options.maxQueued ?? MAX_QUEUED_REQUESTS;
    connection.once("close", () => {
      // Requests left behind by a closed connection give their share of the backlog back.
      for (const left of this.queue.splice(0)) this.options.bandwidth?.uploads?.release(left.length);
    });
  }

  /** Takes `request` and `cancel` frames; false for any other frame. */
  handle(frame: Frame): boolean {
    if (frame.type === "request") {
      this.request(frame);
      return true;
    }
    if (frame.type === "cancel") {
      const at = this.queue.findIndex((q) => q.index === frame.index && q.begin === frame.begin);
      if (at < 0) return true;
      // Not inside the optional call below: `a?.b(x)` does not evaluate x when a is undefined.
      const [cancelled] = this.queue.splice(at, 1);
      this.options.bandwidth?.uploads?.release(cancelled!.length);
      return true;
    }
    return false;
  }

  get queued(): number {
    return this.queue.length;
  }

  private request(frame: Request): void {
    const problem = checkRequest(frame, this.options.metainfo);
    if (problem) return this.connection.refuse(WIRE_ERROR.PROTOCOL, problem);
    if (this.queue.length >= this.maxQueued) return this.connection.refuse(WIRE_ERROR.OVERLOADED, "too many queued requests");
    const uploads = this.options.bandwidth?.uploads;
    if (frame.begin === 0) this.acceptedPieces.delete(frame.index);
    if (uploads && !uploads.tryReserve(frame.length, this.acceptedPieces.has(frame.index))) {
      // Our uplink is booked: say so now, so the peer asks someone else.
      this.connection.send({ type: "reject", index: frame.index, begin: frame.begin, length: frame.length }).catch(() => undefined);
      return;
    }
    this.acceptedPieces.add(frame.index);
    this.queue.push(frame);
    this.pump().catch((error: Error) => this.connection.close(error));
  }

  private async pump(): Promise<void> {
    if (this.serving) return;
    this.serving = true;
    try {
      for (let request = this.queue.shift(); request && !this.connection.isClosed; request = this.queue.shift()) {
        const { index, begin, length } = request;
        try {
          const sent = await this.connection.sendBlock(index, begin, length, (into) => this.options.read(index, begin, length, into));
          if (!sent) await this.connection.send({ type: "reject", index, begin, length });
          else this.options.metrics.bytesUploaded.inc(length);
        } finally {
          this.options.bandwidth?.uploads?.release(length);
        }
      }
    } finally {
      this.serving = false;
    }
  }
}

function checkRequest(request: { index: number; begin: number; length: number }, metainfo: Metainfo): string | undefined {
  if (request.index >= metainfo.pieces.length) return `piece ${request.index} does not exist`;
  const { start, end } = pieceBounds(request.index, metainfo.size, metainfo.pieceLength);
  if (request.length === 0 || request.length > MAX_BLOCK_BYTES) return `block length ${request.length} out of range`;
  if (request.begin + request.length > end - start) return "block runs past its piece";
  return undefined;
}
