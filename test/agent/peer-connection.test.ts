import { afterEach, describe, expect, it } from "vitest";
import net from "node:net";
import { randomBytes } from "node:crypto";
import { PeerConnection } from "../../src/agent-node/p2p/peer-connection.js";
import { plainTransport } from "../../src/agent-node/p2p/transport.js";
import { BufferPool } from "../../src/agent-node/p2p/buffer-pool.js";
import { PieceAssemblies } from "../../src/agent-node/p2p/piece-assembly.js";
import { encodeFrame } from "../../src/shared/p2p/wire/encode.js";
import { MAX_BLOCK_BYTES, type Frame } from "../../src/shared/p2p/wire/frames.js";

/**
 * Connections we dial read into buffers of their own choosing (Node's onread): the rest of the
 * block being received, or one read buffer shared by every dialled connection. Real sockets: two
 * peers send 1 MiB blocks and small frames at once, in writes of odd sizes.
 */
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

async function sender(frames: Uint8Array[], writeSize: number): Promise<number> {
  const stream = Buffer.concat(frames.map((f) => Buffer.from(f)));
  const server = net.createServer((socket) => {
    // Odd-sized writes, each after the last one drained: headers and blocks split anywhere.
    let at = 0;
    const next = () => {
      if (at >= stream.length) return;
      const part = stream.subarray(at, (at += writeSize));
      if (socket.write(part)) setImmediate(next);
      else socket.once("drain", next);
    };
    next();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanups.push(() => server.close());
  return (server.address() as net.AddressInfo).port;
}

describe("PeerConnection.dial", () => {
  it("lands blocks in their piece buffers from two connections at once, and decodes the frames between them", async () => {
    const peers = [0, 1].map((p) => ({
      blocks: [0, 1, 2].map(() => new Uint8Array(randomBytes(MAX_BLOCK_BYTES))),
      targets: [0, 1, 2].map(() => new Uint8Array(MAX_BLOCK_BYTES)),
      got: [] as Frame[],
      p,
    }));
    const ports = await Promise.all(
      peers.map((peer, p) => {
        const frames: Uint8Array[] = [encodeFrame({ type: "keepAlive" })];
        peer.blocks.forEach((data, index) => {
          frames.push(encodeFrame({ type: "piece", index, begin: 0, data }));
          frames.push(encodeFrame({ type: "have", index: 10 + index }));
        });
        // A block nobody asked for: its bytes must survive the shared buffer's reuse.
        frames.push(encodeFrame({ type: "piece", index: 99, begin: 0, data: peer.blocks[0]!.subarray(0, 5000) }));
        frames.push(encodeFrame({ type: "bitfield", bitfield: Uint8Array.of(0xa0 + p) }));
        return sender(frames, p === 0 ? 70_001 : 333_333);
      }),
    );
    const connections = peers.map((peer, p) => {
      const connection = PeerConnection.dial(plainTransport, "127.0.0.1", ports[p]!, 5_000, { idleTimeoutMs: 10_000, keepAliveMs: 5_000 });
      cleanups.push(() => connection.close());
      connection.pieceTarget = (index, begin, length) => (index < 3 && begin === 0 && length === MAX_BLOCK_BYTES ? peer.targets[index] : undefined);
      connection.onFrames((frame) => peer.got.push(frame));
      return connection;
    });
    await Promise.all(peers.map((peer) => until(() => peer.got.length === 8)));
    for (const [p, peer] of peers.entries()) {
      expect(peer.got.map((f) => f.type)).toEqual(["piece", "have", "piece", "have", "piece", "have", "piece", "bitfield"]);
      peer.blocks.forEach((data, index) => {
        const frame = peer.got[2 * index] as Extract<Frame, { type: "piece" }>;
        expect(frame.data).toBe(peer.targets[index]); // in place, no buffer of its own
        expect(Buffer.from(peer.targets[index]!).equals(Buffer.from(data))).toBe(true);
      });
      const stray = peer.got[6] as Extract<Frame, { type: "piece" }>;
      expect(stray.index).toBe(99);
      expect(Buffer.from(stray.data).equals(Buffer.from(peer.blocks[0]!.subarray(0, 5000)))).toBe(true);
      expect(Array.from((peer.got[7] as Extract<Frame, { type: "bitfield" }>).bitfield)).toEqual([0xa0 + p]);
      expect(connections[p]!.bytesReceived).toBe(4 + 3 * (4 + 9 + MAX_BLOCK_BYTES) + 3 * 9 + (4 + 9 + 5000) + 6);
    }
  });
});

describe("a piece given up while its block is being read", () => {
  it("keeps its buffer out of the pool (the next read may land in it) and skips the rest of the block", async () => {
    const first = new Uint8Array(randomBytes(MAX_BLOCK_BYTES));
    const second = new Uint8Array(randomBytes(MAX_BLOCK_BYTES));
    const frameOne = encodeFrame({ type: "piece", index: 1, begin: 0, data: first });
    let socket: net.Socket | undefined;
    const server = net.createServer((s) => {
      socket = s;
      s.write(encodeFrame({ type: "keepAlive" }));
      s.write(frameOne.subarray(0, 200_000)); // the header and part of the block, then nothing for now
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    cleanups.push(() => server.close());
    const pool = new BufferPool(8 * MAX_BLOCK_BYTES);
    const assemblies = new PieceAssemblies(pool, 4);
    const connection = PeerConnection.dial(plainTransport, "127.0.0.1", (server.address() as net.AddressInfo).port, 5_000, { idleTimeoutMs: 10_000, keepAliveMs: 5_000 });
    cleanups.push(() => connection.close());
    connection.pieceTarget = (index, begin, length) => assemblies.target("p", index, begin, length);
    assemblies.reading = (peer, buffer) => connection.mayReadInto(buffer);
    const got: Frame[] = [];
    connection.onFrames((frame) => {
      if (frame.type === "piece") got.push(frame);
    });
    assemblies.start(1, "p", MAX_BLOCK_BYTES);
    const buffer = assemblies.target("p", 1, 0, MAX_BLOCK_BYTES)!;
    await until(() => connection.bytesReceived === 4 + 200_000 && connection.mayReadInto(buffer));
    assemblies.drop(1, "p");
    expect(pool.bytes).toBe(0); // not pooled: the socket's next read goes into it
    assemblies.start(2, "p", MAX_BLOCK_BYTES);
    expect(assemblies.target("p", 2, 0, MAX_BLOCK_BYTES)!.buffer).not.toBe(buffer.buffer);
    socket!.write(frameOne.subarray(200_000));
    socket!.write(encodeFrame({ type: "piece", index: 2, begin: 0, data: second }));
    await until(() => got.length === 1);
    const [frame] = got as Extract<Frame, { type: "piece" }>[];
    expect(frame!.index).toBe(2);
    expect(assemblies.block("p", 2, 0, frame!.data)).toMatchObject({ kind: "complete" });
    expect(Buffer.from(frame!.data).equals(Buffer.from(second))).toBe(true);
    // Once the connection reads elsewhere, a given-up buffer goes back to the pool as before.
    assemblies.start(3, "p", MAX_BLOCK_BYTES);
    assemblies.drop(3, "p");
    expect(pool.bytes).toBe(MAX_BLOCK_BYTES);
  });
});

async function until(condition: () => boolean, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 10));
  }
}
