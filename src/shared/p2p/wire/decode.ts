import { FRAME_TYPE, MAX_FRAME_BYTES, MAX_HANDSHAKE_BYTES, PEER_ID_BYTES, WireError, type Frame } from "./frames.js";

/** A piece frame's type, index and begin, before its block. */
const PIECE_HEADER_BYTES = 9;

const TYPE_NAMES = Object.fromEntries(Object.entries(FRAME_TYPE).map(([name, code]) => [code, name])) as Record<number, Frame["type"]>;

/**
 * Turns bytes, split anywhere, into frames. No I/O: the connection pushes what it reads and gets
 * whole frames back. A length over the cap is refused as soon as its 4 bytes arrive, before any
 * of the payload is buffered. The first frame (a handshake, or a refusal) is capped at
 * MAX_HANDSHAKE_BYTES, later ones at MAX_FRAME_BYTES; a handshake after the first frame is refused.
 */
export class FrameDecoder {
  /** Received chunks not yet consumed, oldest first; the first one from `offset`. */
  private readonly chunks: Uint8Array[] = [];
  private offset = 0;
  private queued = 0;
  private sawFrame = false;
  /** The piece frame whose block is being copied into its target as it arrives (none queued meanwhile). */
  private filling: Filling | undefined;
  /** The frame at the front is a piece frame without a target: wait for all of it. */
  private frontUntargeted = false;

  /**
   * Where a piece frame's block should land: a view of exactly `length` bytes (the receiver's
   * buffer for that piece), or undefined for a buffer of its own. Saves a copy and an allocation
   * per block; the frame's `data` is then that view. Asked when the frame's header arrives and
   * again before each later part of the block is written: when it no longer names the same bytes
   * (the piece was given up, its buffer maybe reused), the rest of the block is skipped and the
   * frame is not delivered.
   */
  pieceTarget: ((index: number, begin: number, length: number) => Uint8Array | undefined) | undefined;

  /**
   * Chunks are queued, not concatenated: a frame's bytes are copied once, when the whole frame is
   * there (a 1 MiB piece arriving in 64 KiB reads used to be copied again at every read); a block
   * with a target is copied into it as it arrives. A `transient` chunk is one the caller reuses
   * once push returns (a shared read buffer): what is left of it is copied, and so is the data of
   * a piece frame that has no target.
   */
  push(chunk: Uint8Array, transient = false): Frame[] {
    const frames: Frame[] = [];
    let rest = chunk;
    if (this.filling) rest = rest.subarray(this.fill(rest, frames));
    if (rest.length > 0) {
      this.chunks.push(rest);
      this.queued += rest.length;
    }
    this.drain(frames, transient);
    if (transient) this.own(chunk);
    return frames;
  }

  /**
   * Where the next socket read may go: the rest of the block being filled (so the kernel copies it
   * straight into the piece buffer), or undefined when the next bytes belong elsewhere.
   */
  readTarget(): Uint8Array | undefined {
    const filling = this.filling;
    return filling?.target && this.queued === 0 ? filling.target.subarray(filling.filled) : undefined;
  }

  private drain(frames: Frame[], transient: boolean): void {
    while (!this.filling && this.queued >= 4) {
      const header = this.peek(4);
      const length = new DataView(header.buffer, header.byteOffset, 4).getUint32(0);
      // A connection opens with a handshake (or a refusal): its first frame is capped as a handshake.
      const cap = this.sawFrame ? MAX_FRAME_BYTES : MAX_HANDSHAKE_BYTES;
      if (length > cap) throw new WireError(`frame of ${length} bytes is over the ${cap}-byte cap`);
      if (this.sawFrame && !this.frontUntargeted && this.queued >= 4 + PIECE_HEADER_BYTES && this.startFill(length)) {
        this.fillFromQueue(frames);
        continue;
      }
      if (this.queued < 4 + length) break;
      this.take(4);
      this.frontUntargeted = false;
      const frame = length === 0 ? ({ type: "keepAlive" } as const) : decodeBody(this.take(length));
      if (frame.type === "handshake" && this.sawFrame) throw new WireError("a second handshake");
      // Its data may be a view of the caller's buffer: keep a copy.
      if (transient && frame.type === "piece") frame.data = frame.data.slice();
      this.sawFrame = true;
      frames.push(frame);
    }
  }

  /** A piece frame of `length` bytes at the front whose block has a target: consumes its header. */
  private startFill(length: number): boolean {
    if (!this.pieceTarget || length <= PIECE_HEADER_BYTES) return false;
    const header = this.peek(4 + PIECE_HEADER_BYTES);
    const view = new DataView(header.buffer, header.byteOffset, header.byteLength);
    if (view.getUint8(4) !== FRAME_TYPE.piece) return false;
    const index = view.getUint32(5);
    const begin = view.getUint32(9);
    const target = this.pieceTarget(index, begin, length - PIECE_HEADER_BYTES);
    if (!target || target.length !== length - PIECE_HEADER_BYTES) {
      this.frontUntargeted = true;
      return false;
    }
    this.take(4 + PIECE_HEADER_BYTES);
    this.filling = { index, begin, target, length: target.length, filled: 0 };
    return true;
  }

  /** Copies the start of `bytes` into the block being filled; returns how many it took. */
  private fill(bytes: Uint8Array, frames: Frame[]): number {
    const filling = this.filling!;
    const count = Math.min(bytes.length, filling.length - filling.filled);
    if (count === 0) return 0;
    const { target } = filling;
    if (target) {
      const now = this.pieceTarget?.(filling.index, filling.begin, filling.length);
      if (!now || now.buffer !== target.buffer || now.byteOffset !== target.byteOffset || now.length !== target.length) filling.target = undefined;
      // A read that went straight into the target (readTarget) is in place already.
      else if (bytes.buffer !== target.buffer || bytes.byteOffset !== target.byteOffset + filling.filled) target.set(bytes.subarray(0, count), filling.filled);
    }
    filling.filled += count;
    if (filling.filled === filling.length) {
      this.filling = undefined;
      if (filling.target) frames.push({ type: "piece", index: filling.index, begin: filling.begin, data: filling.target });
    }
    return count;
  }

  /** Moves queued bytes into the block being filled; what follows the block stays queued. */
  private fillFromQueue(frames: Frame[]): void {
    while (this.filling && this.queued > 0) {
      const chunk = this.chunks[0]!;
      const count = this.fill(chunk.subarray(this.offset), frames);
      this.offset += count;
      this.queued -= count;
      if (this.offset === chunk.length) {
        this.chunks.shift();
        this.offset = 0;
      }
    }
  }

  /** Replaces what is queued of a transient chunk with a copy. */
  private own(chunk: Uint8Array): void {
    const last = this.chunks.length - 1;
    if (last < 0 || this.chunks[last]!.buffer !== chunk.buffer) return;
    const from = last === 0 ? this.offset : 0;
    this.chunks[last] = this.chunks[last]!.slice(from);
    if (last === 0) this.offset = 0;
  }

  /** Bytes received but not yet a whole frame. */
  get pending(): number {
    return this.queued;
  }

  /** The next n queued bytes, without consuming them. */
  private peek(n: number): Uint8Array {
    const first = this.chunks[0]!;
    if (first.length - this.offset >= n) return first.subarray(this.offset, this.offset + n);
    return this.gather(n, false);
  }

  /** Consumes the next n queued bytes: a view when they lie in one chunk, else one copy. */
  private take(n: number): Uint8Array {
    const first = this.chunks[0]!;
    if (first.length - this.offset >= n) {
      const out = first.subarray(this.offset, this.offset + n);
      this.offset += n;
      this.queued -= n;
      if (this.offset === first.length) {
        this.chunks.shift();
        this.offset = 0;
      }
      return out;
    }
    return this.gather(n, true);
  }

  private gather(n: number, consume: boolean): Uint8Array {
    const out = new Uint8Array(n);
    let filled = 0;
    let index = 0;
    let offset = this.offset;
    while (filled < n) {
      const chunk = this.chunks[index]!;
      const count = Math.min(n - filled, chunk.length - offset);
      out.set(chunk.subarray(offset, offset + count), filled);
      filled += count;
      offset += count;
      if (offset === chunk.length) {
        index++;
        offset = 0;
      }
    }
    if (consume) {
      this.chunks.splice(0, index);
      this.offset = offset;
      this.queued -= n;
    }
    return out;
  }
}

interface Filling {
  index: number;
  begin: number;
  /** Undefined once the receiver gave the piece up: the rest of the block is skipped. */
  target: Uint8Array | undefined;
  length: number;
  filled: number;
}

export function decodeBody(body: Uint8Array): Frame {
  const type = TYPE_NAMES[body[0]!];
  const r = new Reader(body.subarray(1));
  let frame: Frame;
  switch (type) {
    case "handshake": {
      const version = r.u8();
      const protocol = r.text(r.u8());
      const digest = r.text(r.u8());
      const peerId = r.bytes(PEER_ID_BYTES);
      const pieceCount = r.u32();
      const bitfield = r.bytes(Math.ceil(pieceCount / 8));
      const auth = r.bytes(r.u16());
      frame = { type, version, protocol, digest, peerId, pieceCount, bitfield, auth };
      break;
    }
    case "bitfield":
      frame = { type, bitfield: r.rest() };
      break;
    case "have":
      frame = { type, index: r.u32() };
      break;
    case "request":
    case "cancel":
    case "reject":
      frame = { type, index: r.u32(), begin: r.u32(), length: r.u32() };
      break;
    case "piece":
      // A view, not a copy: the frame's bytes are this frame's alone (see FrameDecoder.take).
      frame = { type, index: r.u32(), begin: r.u32(), data: r.window(r.remaining) };
      break;
    case "error":
      frame = { type, code: r.u16(), message: r.text(r.remaining) };
      break;
    case "complete":
      frame = { type };
      break;
    case "auth":
      if (r.remaining > 64) throw new WireError("auth proof too long");
      frame = { type, proof: r.rest() };
      break;
    default:
      throw new WireError(`unknown frame type ${body[0]}`);
  }
  if (r.remaining !== 0) throw new WireError(`${type} frame has ${r.remaining} trailing bytes`);
  return frame;
}

class Reader {
  private at = 0;
  private readonly view: DataView;

  constructor(private readonly data: Uint8Array) {
    this.view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  }

  get remaining(): number {
    return this.data.length - this.at;
  }

  private need(n: number): void {
    if (this.remaining < n) throw new WireError("truncated frame");
  }

  u8(): number {
    this.need(1);
    return this.view.getUint8(this.at++);
  }

  u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.at);
    this.at += 2;
    return v;
  }

  u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.at);
    this.at += 4;
    return v;
  }

  bytes(n: number): Uint8Array {
    this.need(n);
    const out = this.data.slice(this.at, this.at + n);
    this.at += n;
    return out;
  }

  window(n: number): Uint8Array {
    this.need(n);
    const out = this.data.subarray(this.at, this.at + n);
    this.at += n;
    return out;
  }

  rest(): Uint8Array {
    return this.bytes(this.remaining);
  }

  text(n: number): string {
    try {
      // ignoreBOM keeps a leading U+FEFF as text: the field is exactly what the sender encoded.
      return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(this.bytes(n));
    } catch (error) {
      if (error instanceof WireError) throw error;
      throw new WireError("invalid UTF-8 in frame");
    }
  }
}
