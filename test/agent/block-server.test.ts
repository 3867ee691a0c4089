import { afterEach, describe, expect, it } from "vitest";
import net from "node:net";
import { createHash, randomBytes } from "node:crypto";
import { pino } from "pino";
import { AgentMetrics } from "../../src/agent-node/metrics.js";
import { PeerConnection } from "../../src/agent-node/p2p/peer-connection.js";
import { BlockServer } from "../../src/agent-node/p2p/block-server.js";
import { acceptHandshake, initiateHandshake } from "../../src/agent-node/p2p/handshake.js";
import { SwarmSession } from "../../src/agent-node/p2p/swarm-session.js";
import { blockHashes, buildMetainfo, type Metainfo } from "../../src/shared/p2p/metainfo.js";
import type { Frame } from "../../src/shared/p2p/wire/frames.js";
import type { Digest } from "../../src/shared/oci/digest.js";

/**
 * One block server serves both kinds of connection: those a peer opened to us (the peer server's)
 * and those we opened to fetch (the swarm session's). A `cancel` takes a queued block back on
 * both, so an endgame duplicate costs no uplink.
 */
const MiB = 1024 * 1024;
const log = pino({ level: "silent" });
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

async function blob(pieces: number): Promise<{ bytes: Buffer; metainfo: Metainfo }> {
  const bytes = randomBytes(pieces * MiB);
  const digest = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
  return { bytes, metainfo: await buildMetainfo(digest, bytes.length, await blockHashes(bytes)) };
}

/** A gate that holds reads until opened. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

/** Collects piece frames a connection receives. */
function pieces(connection: PeerConnection, onRequest?: (index: number) => void): { index: number; begin: number }[] {
  const got: { index: number; begin: number }[] = [];
  connection.onFrames((frame: Frame) => {
    if (frame.type === "piece") got.push({ index: frame.index, begin: frame.begin });
    if (frame.type === "request") onRequest?.(frame.index);
  });
  return got;
}

async function until(condition: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("timed out waiting");
    await settle(10);
  }
}

const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("BlockServer", () => {
  it("on a connection a peer opened to us, a cancel takes a queued block back", async () => {
    const { bytes, metainfo } = await blob(3);
    const held = gate();
    let blocks: BlockServer | undefined;
    const server = net.createServer((socket) => {
      const connection = new PeerConnection(socket, { idleTimeoutMs: 10_000, keepAliveMs: 5_000 });
      void acceptHandshake(connection, { key: undefined, peerId: randomBytes(20), timeoutMs: 5_000 }, () => undefined).then(async () => {
        await connection.send({ type: "bitfield", bitfield: new Uint8Array([0xe0]) });
        const server = new BlockServer(connection, {
        metainfo,
        metrics: new AgentMetrics(),
        read: async (index, begin, length, into) => {
          await held.opened;
          bytes.copy(into, 0, index * MiB + begin, index * MiB + begin + length);
          return into;
        },
      });
        blocks = server;
        connection.onFrames((frame) => void server.handle(frame));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    cleanups.push(() => server.close());
    const socket = net.connect((server.address() as net.AddressInfo).port, "127.0.0.1");
    const client = new PeerConnection(socket, { idleTimeoutMs: 10_000, keepAliveMs: 5_000 });
    cleanups.push(() => client.close());
    await initiateHandshake(client, { digest: metainfo.digest, pieceCount: 3, bitfield: new Uint8Array(1) }, { key: undefined, peerId: randomBytes(20), timeoutMs: 5_000 });
    const got = pieces(client);
    for (const index of [0, 1, 2]) await client.send({ type: "request", index, begin: 0, length: MiB });
    await client.send({ type: "cancel", index: 1, begin: 0, length: MiB });
    // Piece 0 is being read (held); 1 and 2 queued until the cancel took 1 back.
    await until(() => blocks?.queued === 1);
    held.open();
    await until(() => got.length >= 2);
    await settle(200);
    expect(got).toEqual([
      { index: 0, begin: 0 },
      { index: 2, begin: 0 },
    ]);
  });

  it("on a connection the swarm session opened, a cancel takes a queued block back too", async () => {
    const { bytes, metainfo } = await blob(3);
    let held: ReturnType<typeof gate> | undefined;
    let got: { index: number; begin: number }[] | undefined;
    let askedFor2 = false;
    // A leecher the session dials: it asks for pieces 0 and 1, then cancels 1.
    const leecherId = randomBytes(20);
    const server = net.createServer((socket) => {
      held = gate();
      const connection = new PeerConnection(socket, { idleTimeoutMs: 10_000, keepAliveMs: 5_000 });
      void acceptHandshake(connection, { key: undefined, peerId: leecherId, timeoutMs: 5_000 }, () => undefined).then(async () => {
        await connection.send({ type: "bitfield", bitfield: new Uint8Array(1) });
        got = pieces(connection, (index) => index === 2 && (askedFor2 = true));
        await connection.send({ type: "request", index: 0, begin: 0, length: MiB });
        await connection.send({ type: "request", index: 1, begin: 0, length: MiB });
        await connection.send({ type: "cancel", index: 1, begin: 0, length: MiB });
        // Frames are handled in order: once the session asks us for the piece this `have`
        // announces, it has handled the cancel before it.
        await connection.send({ type: "have", index: 2 });
        await until(() => askedFor2);
        held!.open();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    cleanups.push(() => server.close());
    const port = (server.address() as net.AddressInfo).port;

    const session = new SwarmSession({
      digest: metainfo.digest as Digest,
      metainfo,
      peerId: randomBytes(20),
      metrics: new AgentMetrics(),
      log,
      announce: async () => ({
        interval: 60,
        peers: [{ peerId: leecherId.toString("hex"), ip: "127.0.0.1", port, zone: "z", cluster: "c", complete: false, have: 0 }],
        webSeedStartPiece: 2,
        webSeedSlicePieces: 0,
      }),
      webSeed: () => new Promise(() => undefined), // never: the test is about serving
      seed: 1,
    });
    cleanups.push(() => session.stop(new Error("test over")));
    const filled = session.fill({
    // Pieces 0 and 1 are on disk from an earlier run; reads of them wait for the gate once the leecher is on.
      writeAt: async () => undefined,
      readAt: async (position, length, into) => {
        if (held) await held.opened;
        const out = into ?? Buffer.allocUnsafe(length);
        bytes.copy(out, 0, position, position + length);
        return out;
      },
      advance: () => undefined,
      recorded: () => [0, 1],
      record: async () => undefined,
    });
    filled.catch(() => undefined);
    const deadline = Date.now() + 10_000;
    while ((got?.length ?? 0) < 1 && Date.now() < deadline) await settle(50);
    await settle(300);
    expect(got).toEqual([{ index: 0, begin: 0 }]);
  });
});
