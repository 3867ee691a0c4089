import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtemp, rm } from "node:fs/promises";
import { createHash, randomBytes } from "node:crypto";
import { readdir } from "node:fs/promises";
import fc from "fast-check";
import os from "node:os";
import path from "node:path";
import { freePort } from "../helpers/devcluster.js";
import { startAgentProcess, startEdgeProcess, type AgentHandle } from "../helpers/processes.js";
import { pushBlob, sha256 } from "../helpers/registry-client.js";
import { WireClient } from "../helpers/wire-client.js";
import { MetainfoSchema, type Metainfo } from "../../src/shared/p2p/metainfo.js";
import { MAX_BLOCK_BYTES, PROTOCOL_ID, PROTOCOL_VERSION, WIRE_ERROR, type Frame } from "../../src/shared/p2p/wire/frames.js";
import { encodeFrame } from "../../src/shared/p2p/wire/encode.js";
import { AnnounceResponseSchema } from "../../src/shared/api/announce.js";

/** An agent seeds what it has on its peer port, announced to the edge's tracker. */
let home: string;
let edge: Awaited<ReturnType<typeof startEdgeProcess>>;
let agent: AgentHandle;
let peerPort: number;
let digest: string;
let blob: Buffer;
let metainfo: Metainfo;

beforeAll(async () => {
  home = await mkdtemp(path.join(os.tmpdir(), "shoal-seed-"));
  edge = await startEdgeProcess(home);
  peerPort = await freePort();
  agent = await startAgentProcess(edge.url, { ports: [await freePort(), peerPort, await freePort()] });
  blob = randomBytes(2 * 1024 * 1024 + 100); // three pieces: 1 MiB, 1 MiB, 100 bytes
  digest = await pushBlob(edge.url, "seed/blob", blob);
  const res = await fetch(`${agent.registry}/v2/seed/blob/blobs/${digest}`);
  expect(sha256(Buffer.from(await res.arrayBuffer()))).toBe(digest);
  metainfo = MetainfoSchema.parse(await (await fetch(`${edge.url}/shoal/v1/seed/blob/metainfo/${digest}`)).json());
});
afterAll(async () => {
  await agent?.proc.stop();
  await edge?.proc.stop();
  await rm(home, { recursive: true, force: true });
});

const errorOf = (frames: Frame[]) => frames.find((f): f is Extract<Frame, { type: "error" }> => f.type === "error");

describe("seeding on the peer port", () => {
  it("announces the blob to its swarm's tracker as a seeder", async () => {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const res = await fetch(`${edge.url}/shoal/v1/announce`, {
        method: "POST",
        body: JSON.stringify({ digest, peerId: "f".repeat(40), ip: "127.0.0.1", port: 1, zone: "local", cluster: "devcluster", complete: false, have: 0, pieceCount: 3 }),
      });
      const { peers } = AnnounceResponseSchema.parse(await res.json());
      if (peers.some((p) => p.port === peerPort && p.complete)) break;
      if (Date.now() > deadline) throw new Error(`agent not announced: ${JSON.stringify(peers)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  });

  it("answers a handshake with a full bitfield and serves blocks that verify against the metainfo", async () => {
    expect(metainfo.pieces).toHaveLength(3);
    const client = await WireClient.connect(peerPort);
    client.handshake(digest, 3);
    // Piece 1 (1 MiB) as four blocks of 256 KiB.
    for (let begin = 0; begin < 1024 * 1024; begin += 256 * 1024) client.send({ type: "request", index: 1, begin, length: 256 * 1024 });
    const frames = await client.until((f) => f.filter((x) => x.type === "piece").length === 4);
    expect(frames[0]!.type).toBe("handshake");
    const bitfield = frames[1]!;
    expect(bitfield.type).toBe("bitfield");
    if (bitfield.type === "bitfield") expect(Buffer.from(bitfield.bitfield).toString("hex")).toBe("e0");
    const data = Buffer.concat(frames.filter((f): f is Extract<Frame, { type: "piece" }> => f.type === "piece").map((p) => p.data));
    expect(createHash("sha256").update(data).digest("hex")).toBe(metainfo.pieces[1]);
    client.close();
    expect(await agent.metric("shoal_agent_bytes_uploaded_total")).toBeGreaterThanOrEqual(1024 * 1024);
  });

  it.each([
    ["an unknown blob", (c: WireClient) => c.handshake(sha256("not here"), 1), WIRE_ERROR.UNKNOWN_BLOB],
    ["a request past the blob", (c: WireClient) => { c.handshake(digest, 3); c.send({ type: "request", index: 7, begin: 0, length: 10 }); }, WIRE_ERROR.PROTOCOL],
    ["a block past its piece", (c: WireClient) => { c.handshake(digest, 3); c.send({ type: "request", index: 2, begin: 1024 * 1024 + 50, length: 100 }); }, WIRE_ERROR.PROTOCOL],
    ["a wrong piece count", (c: WireClient) => c.handshake(digest, 4), WIRE_ERROR.PROTOCOL],
    ["garbage", (c: WireClient) => c.socket.write(Buffer.from([0, 0, 0, 5, 77, 1, 2, 3, 4])), WIRE_ERROR.PROTOCOL],
    ["an oversized frame", (c: WireClient) => c.socket.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 1])), WIRE_ERROR.PROTOCOL],
    ["a request before the handshake", (c: WireClient) => c.send({ type: "request", index: 0, begin: 0, length: 1 }), WIRE_ERROR.PROTOCOL],
  ])("refuses %s with a reason and closes", async (_label, act, code) => {
    const client = await WireClient.connect(peerPort);
    act(client);
    const frames = await client.until((f) => errorOf(f) !== undefined);
    expect(errorOf(frames)?.code).toBe(code);
    await client.until(() => client.closed);
    expect(client.closed).toBe(true);
    expect((await fetch(`${agent.admin}/health`)).status).toBe(200);
  });

  it("caps connections from one address and closes one that never opens with a handshake", async () => {
    const held = await Promise.all(Array.from({ length: 16 }, () => WireClient.connect(peerPort)));
    const extra = await WireClient.connect(peerPort);
    const frames = await extra.until((f) => errorOf(f) !== undefined);
    expect(errorOf(frames)).toMatchObject({ code: WIRE_ERROR.OVERLOADED, message: "too many connections from this address" });
    // The held ones said nothing: each is refused once the handshake time (5 s) is up.
    const silent = held[0]!;
    const refused = await silent.until((f) => errorOf(f) !== undefined, 10_000);
    expect(errorOf(refused)?.message).toMatch(/in time/);
    for (const client of held) await client.until(() => client.closed, 10_000);
    // And the address may connect again.
    const again = await WireClient.connect(peerPort);
    again.handshake(digest, 3);
    expect((await again.until((f) => f.some((x) => x.type === "bitfield"))).some((x) => x.type === "bitfield")).toBe(true);
    again.close();
  });

  it("fuzzed frame streams (fast-check): served right, or refused with a reason; never a hang, a crash or a leaked socket", async () => {
    const sockets = async () => (await readdir(`/proc/${agent.proc.programPid()}/fd`)).length;
    const before = await sockets();
    const codes = new Set<number>(Object.values(WIRE_ERROR));
    const u32 = fc.oneof(fc.nat(4), fc.constantFrom(1024 * 1024 - 1, 2 ** 31, 2 ** 32 - 1), fc.nat());
    const hello = fc.record({
      digest: fc.oneof(fc.constant(digest), fc.constant(sha256("other")), fc.string({ maxLength: 80 })),
      pieceCount: fc.oneof(fc.constant(3), fc.nat(10)),
      version: fc.oneof(fc.constant(PROTOCOL_VERSION), fc.nat(255)),
      protocol: fc.oneof(fc.constant(PROTOCOL_ID), fc.string({ maxLength: 20 })),
    });
    const frame: fc.Arbitrary<Uint8Array> = fc.oneof(
      { weight: 4, arbitrary: fc.record({ index: fc.oneof(fc.nat(3), u32), begin: fc.oneof(fc.constantFrom(0, 1024 * 1024, 3 * 1024 * 1024), u32), length: fc.oneof(fc.constantFrom(1, 16 * 1024, MAX_BLOCK_BYTES), fc.nat(MAX_BLOCK_BYTES + 10)) })
        .map((r) => (r.length > MAX_BLOCK_BYTES ? Buffer.from([0, 0, 0, 13, 4, ...new Uint8Array(12)]) : encodeFrame({ type: "request", ...r }))) },
      { weight: 1, arbitrary: fc.record({ index: u32, begin: u32, length: fc.nat(MAX_BLOCK_BYTES) }).map((r) => encodeFrame({ type: "cancel", ...r })) },
      { weight: 1, arbitrary: u32.map((index) => encodeFrame({ type: "have", index })) },
      { weight: 1, arbitrary: fc.uint8Array({ maxLength: 8 }).map((bitfield) => encodeFrame({ type: "bitfield", bitfield })) },
      { weight: 1, arbitrary: fc.record({ index: fc.nat(3), begin: fc.nat(), data: fc.uint8Array({ maxLength: 64 }) }).map((p) => encodeFrame({ type: "piece", ...p })) },
      { weight: 1, arbitrary: fc.constant(encodeFrame({ type: "keepAlive" })) },
      { weight: 1, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 64 }) },
      { weight: 1, arbitrary: fc.constant(Uint8Array.from([0xff, 0xff, 0xff, 0xff, 1])) },
    );
    const stream = fc.tuple(fc.option(hello, { freq: 5 }), fc.array(frame, { maxLength: 12 }), fc.nat(64));
    await fc.assert(
      fc.asyncProperty(stream, async ([first, rest, cut]) => {
        const client = await WireClient.connect(peerPort);
        if (first) {
          client.send({ type: "handshake", version: first.version, protocol: first.protocol, digest: first.digest, peerId: client.peerId, pieceCount: first.pieceCount, bitfield: new Uint8Array(Math.ceil(first.pieceCount / 8)), auth: new Uint8Array(0) });
        }
        const bytes = Buffer.concat(rest);
        // Sometimes the stream is cut short: a frame left half-sent.
        client.socket.end(cut % 4 === 0 ? bytes.subarray(0, Math.max(0, bytes.length - cut)) : bytes);
        // The agent answers and closes once our side has ended: within the handshake time at worst.
        await client.until(() => client.closed, 10_000);
        for (const received of client.frames) {
          if (received.type === "error") expect(codes.has(received.code)).toBe(true);
          if (received.type === "piece") {
            const start = received.index * metainfo.pieceLength + received.begin;
            expect(Buffer.from(received.data).equals(blob.subarray(start, start + received.data.length))).toBe(true);
          }
          expect(["handshake", "bitfield", "piece", "reject", "error", "keepAlive", "have", "complete"]).toContain(received.type);
        }
      }),
      { numRuns: 150, interruptAfterTimeLimit: 120_000, markInterruptAsFailure: true },
    );
    expect((await fetch(`${agent.admin}/health`)).status).toBe(200);
    // Every fuzzing connection is closed on the agent's side too.
    const deadline = Date.now() + 10_000;
    while ((await sockets()) > before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    expect(await sockets()).toBeLessThanOrEqual(before);
  }, 300_000);
});
