import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtemp, rm } from "node:fs/promises";
import { createHash, randomBytes } from "node:crypto";
import os from "node:os";
import path from "node:path";
import { freePort } from "../helpers/devcluster.js";
import { startAgentProcess, startEdgeProcess, type AgentHandle } from "../helpers/processes.js";
import { pushBlob, sha256 } from "../helpers/registry-client.js";
import { WireClient } from "../helpers/wire-client.js";
import { MetainfoSchema, type Metainfo } from "../../src/shared/p2p/metainfo.js";
import { WIRE_ERROR, type Frame } from "../../src/shared/p2p/wire/frames.js";
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
  blob = randomBytes(9 * 1024 * 1024 + 100);
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
    for (let begin = 0; begin < 4 * 1024 * 1024; begin += 1024 * 1024) client.send({ type: "request", index: 1, begin, length: 1024 * 1024 });
    const frames = await client.until((f) => f.filter((x) => x.type === "piece").length === 4);
    expect(frames[0]!.type).toBe("handshake");
    const bitfield = frames[1]!;
    expect(bitfield.type).toBe("bitfield");
    if (bitfield.type === "bitfield") expect(Buffer.from(bitfield.bitfield).toString("hex")).toBe("e0");
    const data = Buffer.concat(frames.filter((f): f is Extract<Frame, { type: "piece" }> => f.type === "piece").map((p) => p.data));
    expect(createHash("sha256").update(data).digest("hex")).toBe(metainfo.pieces[1]);
    client.close();
    expect(await agent.metric("shoal_agent_bytes_uploaded_total")).toBeGreaterThanOrEqual(4 * 1024 * 1024);
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
});
