import { describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { encodeFrame, encodePieceParts } from "../../src/shared/p2p/wire/encode.js";
import { FrameDecoder } from "../../src/shared/p2p/wire/decode.js";
import { MAX_BLOCK_BYTES, MAX_FRAME_BYTES, PROTOCOL_ID, PROTOCOL_VERSION, WireError, type Frame } from "../../src/shared/p2p/wire/frames.js";
import { Bitfield } from "../../src/shared/p2p/bitfield.js";
import { MetainfoSchema, pieceBounds, pieceCount, pieceLengthFor } from "../../src/shared/p2p/metainfo.js";

const field = new Bitfield(13);
field.set(0);
field.set(12);
const FRAMES: Frame[] = [
  {
    type: "handshake",
    version: PROTOCOL_VERSION,
    protocol: PROTOCOL_ID,
    digest: "sha256:" + "ab".repeat(32),
    peerId: new Uint8Array(randomBytes(20)),
    pieceCount: 13,
    bitfield: field.bytes,
    auth: new Uint8Array(randomBytes(32)),
  },
  { type: "keepAlive" },
  { type: "bitfield", bitfield: field.bytes },
  { type: "have", index: 7 },
  { type: "request", index: 3, begin: 1024, length: 65536 },
  { type: "piece", index: 3, begin: 1024, data: new Uint8Array(randomBytes(3000)) },
  { type: "cancel", index: 3, begin: 1024, length: 65536 },
  { type: "reject", index: 4, begin: 0, length: 16 },
  { type: "error", code: 4, message: "bad piece: sha256 mismatch ✗" },
  { type: "complete" },
];
const wire = new Uint8Array(Buffer.concat(FRAMES.map((f) => encodeFrame(f))));

const normalize = (frames: Frame[]) => JSON.parse(JSON.stringify(frames, (_k, v) => (v instanceof Uint8Array ? Buffer.from(v).toString("hex") : v)));

describe("peer wire codec", () => {
  it("round-trips every frame type", () => {
    expect(normalize(new FrameDecoder().push(wire))).toEqual(normalize(FRAMES));
  });

  it("decodes the same frames whatever the split point (every byte)", () => {
    for (let split = 0; split <= wire.length; split++) {
      const decoder = new FrameDecoder();
      const frames = [...decoder.push(wire.subarray(0, split)), ...decoder.push(wire.subarray(split))];
      expect(normalize(frames)).toEqual(normalize(FRAMES));
      expect(decoder.pending).toBe(0);
    }
  });

  it("decodes input fed one byte at a time", () => {
    const decoder = new FrameDecoder();
    const frames: Frame[] = [];
    for (const byte of wire) frames.push(...decoder.push(Uint8Array.of(byte)));
    expect(normalize(frames)).toEqual(normalize(FRAMES));
  });

  it("refuses an oversized length before buffering its payload", () => {
    const decoder = new FrameDecoder();
    decoder.push(encodeFrame(FRAMES[0]!));
    const header = new Uint8Array(4);
    new DataView(header.buffer).setUint32(0, MAX_FRAME_BYTES + 1);
    expect(() => decoder.push(header)).toThrow(/over the/);
    const huge = new Uint8Array(4);
    new DataView(huge.buffer).setUint32(0, 0xffffffff);
    expect(() => new FrameDecoder().push(huge)).toThrow(WireError);
  });

  it.each([
    ["an unknown type", Uint8Array.of(0, 0, 0, 1, 99)],
    ["a truncated have", Uint8Array.of(0, 0, 0, 3, 3, 0, 0)],
    ["trailing bytes", Uint8Array.of(0, 0, 0, 6, 3, 0, 0, 0, 1, 9)],
    ["invalid UTF-8 in an error", Uint8Array.of(0, 0, 0, 4, 8, 0, 1, 0xff)],
  ])("refuses %s", (_label, bytes) => {
    expect(() => new FrameDecoder().push(bytes)).toThrow(WireError);
  });

  it("refuses a second handshake and blocks over the cap", () => {
    const decoder = new FrameDecoder();
    decoder.push(encodeFrame(FRAMES[0]!));
    expect(() => decoder.push(encodeFrame(FRAMES[0]!))).toThrow(/second handshake/);
    expect(() => encodeFrame({ type: "request", index: 0, begin: 0, length: MAX_BLOCK_BYTES + 1 })).toThrow(WireError);
  });

  it("decodes garbage without crashing or hanging: it throws WireError or waits for more", () => {
    for (let i = 0; i < 2000; i++) {
      const decoder = new FrameDecoder();
      try {
        decoder.push(new Uint8Array(randomBytes(1 + (i % 64))));
      } catch (error) {
        expect(error).toBeInstanceOf(WireError);
      }
    }
  });
});

describe("piece frames sent in two parts", () => {
  it("header + block equal the whole frame, and a 1 MiB block decodes from 64 KiB reads", () => {
    const frame = { type: "piece" as const, index: 7, begin: 3 * MAX_BLOCK_BYTES, data: new Uint8Array(randomBytes(MAX_BLOCK_BYTES)) };
    const [header, block] = encodePieceParts(frame);
    const whole = encodeFrame(frame);
    expect(Buffer.concat([header, block]).equals(Buffer.from(whole))).toBe(true);
    expect(block).toBe(frame.data); // not copied
    const decoder = new FrameDecoder();
    decoder.push(encodeFrame({ type: "keepAlive" })); // past a connection's first frame, capped lower
    const frames: Frame[] = [];
    for (let at = 0; at < whole.length; at += 65536) frames.push(...decoder.push(whole.subarray(at, at + 65536)));
    expect(frames).toHaveLength(1);
    expect(Buffer.from((frames[0] as typeof frame).data).equals(Buffer.from(frame.data))).toBe(true);
    expect(decoder.pending).toBe(0);
  });

  it("lands a block straight in the receiver's buffer when it names one, at any split; other frames as before", () => {
    const piece = { type: "piece" as const, index: 5, begin: 2 * 4096, data: new Uint8Array(randomBytes(4096)) };
    const other = { type: "piece" as const, index: 6, begin: 0, data: new Uint8Array(randomBytes(100)) };
    const stream = Buffer.concat([encodeFrame({ type: "keepAlive" }), encodeFrame(piece), encodeFrame({ type: "have", index: 1 }), encodeFrame(other)].map((b) => Buffer.from(b)));
    for (const step of [1, 7, 13, 4096, stream.length]) {
      const assembly = new Uint8Array(4 * 4096);
      const asked: [number, number, number][] = [];
      const decoder = new FrameDecoder();
      decoder.pieceTarget = (index, begin, length) => {
        asked.push([index, begin, length]);
        if (index === 5) return assembly.subarray(begin, begin + length);
        if (index === 6) return new Uint8Array(length + 1); // the wrong size: ignored
        return undefined;
      };
      const frames: Frame[] = [];
      for (let at = 0; at < stream.length; at += step) frames.push(...decoder.push(stream.subarray(at, at + step)));
      expect(frames.map((f) => f.type)).toEqual(["keepAlive", "piece", "have", "piece"]);
      const landed = frames[1] as typeof piece;
      expect(landed.data.buffer).toBe(assembly.buffer); // no copy of its own
      expect(Buffer.from(assembly.subarray(2 * 4096, 3 * 4096)).equals(Buffer.from(piece.data))).toBe(true);
      expect(Buffer.from((frames[3] as typeof other).data).equals(Buffer.from(other.data))).toBe(true);
      // Asked again before each later part of the block (it may have been given up meanwhile).
      expect([...new Set(asked.map((a) => a.join()))]).toEqual([[5, 2 * 4096, 4096].join(), [6, 0, 100].join()]);
      expect(decoder.pending).toBe(0);
    }
  });

  it("decodes from one reused read buffer (transient chunks), landing blocks in place when reads go to readTarget", () => {
    const pieces = [0, 1, 2].map((index) => ({ type: "piece" as const, index, begin: 0, data: new Uint8Array(randomBytes(10_000)) }));
    const untargeted = { type: "piece" as const, index: 9, begin: 0, data: new Uint8Array(randomBytes(3000)) };
    const frames = [encodeFrame({ type: "keepAlive" }), ...pieces.map((p) => encodeFrame(p)), encodeFrame({ type: "have", index: 4 }), encodeFrame(untargeted), encodeFrame({ type: "bitfield", bitfield: Uint8Array.of(0xf0) })];
    const stream = Buffer.concat(frames.map((b) => Buffer.from(b)));
    for (const step of [1, 5, 13, 999, 4096, stream.length]) {
      const buffers = pieces.map(() => new Uint8Array(10_000));
      const decoder = new FrameDecoder();
      decoder.pieceTarget = (index, _begin, length) => (index < 3 && length === 10_000 ? buffers[index] : undefined);
      const shared = new Uint8Array(step);
      const out: Frame[] = [];
      let direct = 0;
      for (let at = 0; at < stream.length; ) {
        // As a socket read does: into the block being filled when there is one, else the shared buffer.
        const into = decoder.readTarget() ?? shared;
        const n = Math.min(into === shared ? step : into.length, stream.length - at);
        into.set(stream.subarray(at, at + n));
        at += n;
        if (into !== shared) direct += n;
        out.push(...decoder.push(into.subarray(0, n), into === shared));
        shared.fill(0xee); // the caller reuses it: nothing decoded may still point into it
      }
      expect(out.map((f) => f.type)).toEqual(["keepAlive", "piece", "piece", "piece", "have", "piece", "bitfield"]);
      pieces.forEach((p, i) => {
        expect((out[1 + i] as typeof p).data).toBe(buffers[i]);
        expect(Buffer.from(buffers[i]!).equals(Buffer.from(p.data))).toBe(true);
      });
      expect(Buffer.from((out[5] as typeof untargeted).data).equals(Buffer.from(untargeted.data))).toBe(true);
      expect(Array.from((out[6] as { bitfield: Uint8Array }).bitfield)).toEqual([0xf0]);
      // Only the part of a block that came in the same read as its header went through the shared buffer.
      if (step < 10_000) expect(direct).toBeGreaterThanOrEqual(3 * (10_000 - step));
      expect(decoder.pending).toBe(0);
      expect(decoder.readTarget()).toBeUndefined();
    }
  });

  it("skips the rest of a block whose target was given up mid-way, and decodes what follows", () => {
    const piece = { type: "piece" as const, index: 3, begin: 0, data: new Uint8Array(randomBytes(8000)) };
    const stream = Buffer.concat([encodeFrame({ type: "keepAlive" }), encodeFrame(piece), encodeFrame({ type: "have", index: 2 })].map((b) => Buffer.from(b)));
    const first = new Uint8Array(8000);
    let current: Uint8Array | undefined = first;
    const decoder = new FrameDecoder();
    decoder.pieceTarget = () => current;
    const out: Frame[] = [...decoder.push(stream.subarray(0, 2000))];
    // Given up (its buffer back in a pool, perhaps handed to another piece): not one more byte lands in it.
    current = new Uint8Array(8000);
    const reused = current;
    for (let at = 2000; at < stream.length; at += 1000) out.push(...decoder.push(stream.subarray(at, at + 1000)));
    expect(out.map((f) => f.type)).toEqual(["keepAlive", "have"]);
    expect(reused.every((b) => b === 0)).toBe(true);
    expect(Buffer.from(first.subarray(0, 2000 - 4 - 13)).equals(Buffer.from(piece.data.subarray(0, 2000 - 4 - 13)))).toBe(true);
    expect(decoder.pending).toBe(0);
  });

  it("refuses a block over the cap", () => {
    expect(() => encodePieceParts({ type: "piece", index: 0, begin: 0, data: new Uint8Array(MAX_FRAME_BYTES) })).toThrow(WireError);
  });
});

describe("bitfield", () => {
  it("sets and counts bits, MSB first", () => {
    expect(field.bytes).toEqual(Uint8Array.of(0x80, 0x08));
    expect(field.count()).toBe(2);
    expect(Bitfield.full(13).complete()).toBe(true);
    expect(() => field.has(13)).toThrow(RangeError);
  });

  it("refuses spare bits and a wrong byte length", () => {
    expect(() => new Bitfield(13, Uint8Array.of(0, 0x04))).toThrow(/past its length/);
    expect(() => new Bitfield(13, Uint8Array.of(0))).toThrow(/needs 2 bytes/);
  });
});

describe("metainfo", () => {
  it("uses 1 MiB pieces, doubling to keep at most 2,000 pieces", () => {
    const MiB = 1024 * 1024;
    expect(pieceLengthFor(0)).toBe(MiB);
    expect(pieceLengthFor(2000 * MiB)).toBe(MiB);
    expect(pieceLengthFor(2000 * MiB + 1)).toBe(2 * MiB);
    expect(pieceLengthFor(8000 * MiB + 1)).toBe(8 * MiB);
    expect(pieceCount(100 * 1024 ** 3, pieceLengthFor(100 * 1024 ** 3))).toBeLessThanOrEqual(2000);
    expect(pieceBounds(2, 10, 4)).toEqual({ start: 8, end: 10 });
    expect(() => pieceBounds(3, 10, 4)).toThrow(RangeError);
  });

  it("validates metainfo with zod; metainfo without a block length hashed 4 MiB blocks", () => {
    const good = { digest: "sha256:" + "a".repeat(64), size: 10, pieceLength: 4, blockLength: 2, pieces: ["b".repeat(64), "c".repeat(64), "d".repeat(64)] };
    expect(MetainfoSchema.safeParse(good).success).toBe(true);
    expect(MetainfoSchema.safeParse({ ...good, pieces: good.pieces.slice(1) }).success).toBe(false);
    expect(MetainfoSchema.safeParse({ ...good, pieces: ["nothex"] }).success).toBe(false);
    expect(MetainfoSchema.safeParse({ ...good, blockLength: 3 }).success).toBe(false);
    const legacy = { digest: good.digest, size: 10, pieceLength: 4 * 1024 * 1024, pieces: ["b".repeat(64)] };
    expect(MetainfoSchema.parse(legacy).blockLength).toBe(4 * 1024 * 1024);
    expect(MetainfoSchema.safeParse({ ...legacy, pieceLength: 1024 * 1024 }).success).toBe(false);
  });
});

describe("piece hashes through blocks", () => {
  it.each([
    ["1 MiB blocks", 1024 * 1024],
    ["4 MiB blocks (metainfo without a block length)", 4 * 1024 * 1024],
  ])("a one-block piece is its SHA-256; a bigger piece hashes its block hashes (%s)", async (_, block) => {
    const { piecesFromBlocks, blockHashes, pieceHash, buildMetainfo } = await import("../../src/shared/p2p/metainfo.js");
    const { createHash } = await import("node:crypto");
    const data = new Uint8Array(randomBytes(block * 2 + 10));
    const blocks = await blockHashes(data, block);
    expect(blocks).toHaveLength(3);
    expect(blocks[0]).toBe(createHash("sha256").update(data.subarray(0, block)).digest("hex"));
    const hashing = { pieceLength: block * 2, blockLength: block };
    const big = await piecesFromBlocks(blocks, hashing);
    expect(big).toHaveLength(2);
    const joined = Buffer.concat(blocks.slice(0, 2).map((h) => Buffer.from(h, "hex")));
    expect(big[0]).toBe(createHash("sha256").update(joined).digest("hex"));
    expect(await pieceHash(data.subarray(0, block * 2), hashing)).toBe(big[0]);
    expect(await pieceHash(data.subarray(block * 2), hashing)).toBe(big[1]);
    // One block per piece: each piece is the plain SHA-256 of its bytes.
    const metainfo = await buildMetainfo("sha256:" + "a".repeat(64), data.length, blocks, block);
    expect(metainfo.pieceLength).toBe(Math.max(1024 * 1024, block));
    expect(metainfo.blockLength).toBe(block);
    expect(metainfo.pieces).toEqual(blocks);
  });
});
