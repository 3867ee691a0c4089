import { FRAME_TYPE, MAX_BLOCK_BYTES, MAX_FRAME_BYTES, MAX_HANDSHAKE_BYTES, PEER_ID_BYTES, WireError, type Frame } from "./frames.js";

/**
 * Encoding. Every frame is `u32 length | u8 type | payload`, big-endian, where length counts the
 * type byte and the payload (a keep-alive is a bare zero length). Payloads:
 *   handshake  u8 version | u8 n | protocol[n] | u8 n | digest[n] | peerId[20] | u32 pieceCount |
 *              bitfield[ceil(pieceCount/8)] | u16 n | auth[n]
 *   bitfield   bits (most significant bit of byte 0 is piece 0)
 *   have       u32 index
 *   request    u32 index | u32 begin | u32 length
 *   piece      u32 index | u32 begin | data
 *   cancel     u32 index | u32 begin | u32 length
 *   reject     u32 index | u32 begin | u32 length
 *   error      u16 code | utf-8 message
 *   complete   (empty)
 *   auth       proof (HMAC-SHA256, 32 bytes)
 */
export function encodeFrame(frame: Frame): Uint8Array {
  if (frame.type === "keepAlive") return new Uint8Array(4);
  const payload = encodePayload(frame);
  const cap = frame.type === "handshake" ? MAX_HANDSHAKE_BYTES : MAX_FRAME_BYTES;
  if (payload.length + 1 > cap) throw new WireError(`${frame.type} frame of ${payload.length} bytes is over the cap`);
  const out = new Uint8Array(5 + payload.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, payload.length + 1);
  out[4] = FRAME_TYPE[frame.type];
  out.set(payload, 5);
  return out;
}

/**
 * A piece frame as two parts, the 13-byte header and the block itself, so a sender can write the
 * block without copying it into a new frame (1 MiB per block: the copies kept the collector busy).
 * `concat(encodePieceParts(f))` equals `encodeFrame(f)`.
 */
export function encodePieceParts(frame: Extract<Frame, { type: "piece" }>): [Uint8Array, Uint8Array] {
  if (frame.data.length + 9 > MAX_FRAME_BYTES) throw new WireError(`piece frame of ${frame.data.length + 8} bytes is over the cap`);
  const header = new Uint8Array(13);
  const view = new DataView(header.buffer);
  view.setUint32(0, frame.data.length + 9);
  header[4] = FRAME_TYPE.piece;
  new Writer(8).u32(frame.index).u32(frame.begin).done().forEach((b, i) => (header[5 + i] = b));
  return [header, frame.data];
}

function encodePayload(frame: Exclude<Frame, { type: "keepAlive" }>): Uint8Array {
  switch (frame.type) {
    case "handshake": {
      const protocol = utf8(frame.protocol);
      const digest = utf8(frame.digest);
      if (protocol.length > 255 || digest.length > 255) throw new WireError("handshake field too long");
      if (frame.peerId.length !== PEER_ID_BYTES) throw new WireError(`peer id must be ${PEER_ID_BYTES} bytes`);
      if (frame.bitfield.length !== Math.ceil(frame.pieceCount / 8)) throw new WireError("bitfield does not match piece count");
      if (frame.auth.length > 0xffff) throw new WireError("auth too long");
      const w = new Writer(1 + 1 + protocol.length + 1 + digest.length + PEER_ID_BYTES + 4 + frame.bitfield.length + 2 + frame.auth.length);
      w.u8(frame.version).u8(protocol.length).bytes(protocol).u8(digest.length).bytes(digest).bytes(frame.peerId);
      w.u32(frame.pieceCount).bytes(frame.bitfield).u16(frame.auth.length).bytes(frame.auth);
      return w.done();
    }
    case "bitfield":
      return frame.bitfield;
    case "have":
      return new Writer(4).u32(frame.index).done();
    case "request":
    case "cancel":
    case "reject":
      if (frame.length > MAX_BLOCK_BYTES) throw new WireError(`block of ${frame.length} bytes is over ${MAX_BLOCK_BYTES}`);
      return new Writer(12).u32(frame.index).u32(frame.begin).u32(frame.length).done();
    case "piece":
      return new Writer(8 + frame.data.length).u32(frame.index).u32(frame.begin).bytes(frame.data).done();
    case "error": {
      const message = utf8(truncateText(frame.message, MAX_ERROR_UNITS));
      return new Writer(2 + message.length).u16(frame.code).bytes(message).done();
    }
    case "complete":
      return new Uint8Array(0);
    case "auth":
      if (frame.proof.length > 64) throw new WireError("auth proof too long");
      return frame.proof;
  }
}

class Writer {
  private readonly out: Uint8Array;
  private readonly view: DataView;
  private at = 0;

  constructor(size: number) {
    this.out = new Uint8Array(size);
    this.view = new DataView(this.out.buffer);
  }

  u8(v: number): this {
    this.view.setUint8(this.at, v);
    this.at += 1;
    return this;
  }

  u16(v: number): this {
    this.view.setUint16(this.at, v);
    this.at += 2;
    return this;
  }

  u32(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new WireError(`not a u32: ${v}`);
    this.view.setUint32(this.at, v);
    this.at += 4;
    return this;
  }

  bytes(b: Uint8Array): this {
    this.out.set(b, this.at);
    this.at += b.length;
    return this;
  }

  done(): Uint8Array {
    return this.out;
  }
}

function utf8(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

/** Error messages are cut to this many UTF-16 units. */
const MAX_ERROR_UNITS = 1000;

/** The first `units` UTF-16 units of `text`, one fewer when the cut would split a surrogate pair. */
function truncateText(text: string, units: number): string {
  if (text.length <= units) return text;
  const last = text.charCodeAt(units - 1);
  return text.slice(0, last >= 0xd800 && last <= 0xdbff ? units - 1 : units);
}
