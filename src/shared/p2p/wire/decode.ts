import { FRAME_TYPE, MAX_FRAME_BYTES, MAX_HANDSHAKE_BYTES, PEER_ID_BYTES, WireError, type Frame } from "./frames.js";

const TYPE_NAMES = Object.fromEntries(Object.entries(FRAME_TYPE).map(([name, code]) => [code, name])) as Record<number, Frame["type"]>;

/**
 * Turns bytes, split anywhere, into frames. No I/O: the connection pushes what it reads and gets
 * whole frames back. A length over the cap is refused as soon as its 4 bytes arrive, before any
 * of the payload is buffered. The first frame may be a handshake (larger cap); later ones may not.
 */
export class FrameDecoder {
  private buffer: Uint8Array = new Uint8Array(0);
  private sawFrame = false;

  push(chunk: Uint8Array): Frame[] {
    this.buffer = this.buffer.length === 0 ? chunk : concat(this.buffer, chunk);
    const frames: Frame[] = [];
    for (;;) {
      if (this.buffer.length < 4) break;
      const view = new DataView(this.buffer.buffer, this.buffer.byteOffset, this.buffer.byteLength);
      const length = view.getUint32(0);
      const cap = this.sawFrame ? MAX_FRAME_BYTES : Math.max(MAX_FRAME_BYTES, MAX_HANDSHAKE_BYTES);
      if (length > cap) throw new WireError(`frame of ${length} bytes is over the ${cap}-byte cap`);
      if (this.buffer.length < 4 + length) break;
      const body = this.buffer.subarray(4, 4 + length);
      this.buffer = this.buffer.subarray(4 + length);
      const frame = length === 0 ? ({ type: "keepAlive" } as const) : decodeBody(body);
      if (frame.type === "handshake" && this.sawFrame) throw new WireError("a second handshake");
      this.sawFrame = true;
      frames.push(frame);
    }
    // Keep a compact copy so a big chunk's buffer is not retained for a small tail.
    if (this.buffer.length > 0 && this.buffer.byteOffset > 0) this.buffer = this.buffer.slice();
    return frames;
  }

  /** Bytes received but not yet a whole frame. */
  get pending(): number {
    return this.buffer.length;
  }
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
      frame = { type, index: r.u32(), begin: r.u32(), data: r.rest() };
      break;
    case "error":
      frame = { type, code: r.u16(), message: r.text(r.remaining) };
      break;
    case "complete":
      frame = { type };
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

  rest(): Uint8Array {
    return this.bytes(this.remaining);
  }

  text(n: number): string {
    try {
      return new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(this.bytes(n));
    } catch (error) {
      if (error instanceof WireError) throw error;
      throw new WireError("invalid UTF-8 in frame");
    }
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}
