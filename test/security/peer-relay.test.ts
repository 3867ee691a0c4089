import { afterAll, beforeAll, describe, expect, it } from "vitest";
import net from "node:net";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import os from "node:os";
import path from "node:path";
import { freePort } from "../helpers/devcluster.js";
import { startAgentProcess, startEdgeProcess, type AgentHandle } from "../helpers/processes.js";
import { pushBlob, sha256 } from "../helpers/registry-client.js";
import { FrameDecoder } from "../../src/shared/p2p/wire/decode.js";
import { encodeFrame } from "../../src/shared/p2p/wire/encode.js";
import { WIRE_ERROR, type Frame } from "../../src/shared/p2p/wire/frames.js";
import { pieceCount, pieceLengthFor } from "../../src/shared/p2p/metainfo.js";

/**
 * A host without the cluster secret gets itself handed out to an honest agent, then passes that
 * agent's handshake on to a peer port (a third agent's, or the victim's own) and, once the
 * handshake is through, asks for pieces itself. The proofs are bound to the connection (the
 * endpoint dialled) and to the peer ids, so the relayed or reflected handshake must fail: no
 * bitfield, no piece. Real agent processes, a real tracker, real sockets.
 */
const SECRET = randomBytes(32).toString("hex");
const BLOB_BYTES = 9 * 1024 * 1024 + 100;
const PIECES = pieceCount(BLOB_BYTES, pieceLengthFor(BLOB_BYTES));
const BLOCK = 16 * 1024;

let home: string;
let edge: Awaited<ReturnType<typeof startEdgeProcess>>;
let blob: Buffer;
let digest: string;
const agents: AgentHandle[] = [];
const relays: Relay[] = [];

/** What the relaying attacker got out of the peer port it relayed to. */
interface Outcome {
  relayed: boolean;
  bitfield: boolean;
  piece?: Buffer;
  /** Error codes either side sent through the relay (the victim, refusing the relayed proof, or the target). */
  errors: number[];
}

/**
 * The attacker: a listener that, for each connection an honest agent opens to it, dials `target`,
 * passes bytes both ways until the victim's `auth` frame has gone through, then drops the victim
 * and speaks to the target alone: waits for its bitfield and requests the first block of piece 0.
 */
class Relay {
  readonly server = net.createServer((victim) => this.relay(victim));
  readonly outcome: Outcome = { relayed: false, bitfield: false, errors: [] };
  private done: () => void = () => undefined;
  readonly finished = new Promise<void>((resolve) => (this.done = resolve));
  port = 0;

  constructor(private readonly target: number) {}

  async listen(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this;
  }

  private relay(victim: net.Socket): void {
    if (this.outcome.relayed) return void victim.destroy(); // one relay is enough
    this.outcome.relayed = true;
    const target = net.connect(this.target, "127.0.0.1");
    const fromVictim = new FrameDecoder();
    const fromTarget = new FrameDecoder();
    let alone = false;
    victim.on("error", () => undefined);
    target.on("error", () => undefined);
    victim.on("data", (chunk: Buffer) => {
      if (alone) return;
      target.write(chunk);
      let frames: Frame[];
      try {
        frames = fromVictim.push(new Uint8Array(chunk));
      } catch {
        return void victim.destroy();
      }
      for (const frame of frames) if (frame.type === "error") this.outcome.errors.push(frame.code);
      if (frames.some((f) => f.type === "auth")) {
        alone = true;
        victim.destroy();
      }
    });
    target.on("data", (chunk: Buffer) => {
      if (!alone) victim.write(chunk);
      let frames: Frame[];
      try {
        frames = fromTarget.push(new Uint8Array(chunk));
      } catch {
        return void target.destroy();
      }
      for (const frame of frames) {
        if (frame.type === "error") this.outcome.errors.push(frame.code);
        if (frame.type === "bitfield" && alone) {
          this.outcome.bitfield = true;
          target.write(encodeFrame({ type: "request", index: 0, begin: 0, length: BLOCK }));
        }
        if (frame.type === "piece" && alone && frame.index === 0 && frame.begin === 0) {
          this.outcome.piece = Buffer.from(frame.data);
          target.destroy();
        }
      }
    });
    target.on("close", () => {
      victim.destroy();
      this.done();
    });
    victim.on("close", () => {
      if (!alone) target.destroy();
    });
  }

  /** Puts the relay into the blob's swarm as a complete seeder, so agents are handed it out. */
  async announce(): Promise<void> {
    const res = await fetch(`${edge.url}/shoal/v1/announce`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        digest,
        peerId: randomBytes(20).toString("hex"),
        ip: "127.0.0.1",
        port: this.port,
        zone: "local",
        cluster: "devcluster",
        complete: true,
        have: PIECES,
        pieceCount: PIECES,
      }),
    });
    expect(res.status).toBe(200);
  }
}

async function agent(): Promise<AgentHandle & { peerPort: number }> {
  const secrets = path.join(home, `secrets-${randomBytes(4).toString("hex")}.yaml`);
  await writeFile(secrets, `clusterSecret: "${SECRET}"\n`, { mode: 0o600 });
  const ports: [number, number, number] = [await freePort(), await freePort(), await freePort()];
  const handle = await startAgentProcess(edge.url, { ports, extra: ["--peer-ip=127.0.0.1", "--secrets", secrets] });
  agents.push(handle);
  return { ...handle, peerPort: ports[1] };
}

async function pullThrough(a: AgentHandle): Promise<void> {
  const res = await fetch(`${a.registry}/v2/relay/blob/blobs/${digest}`);
  expect(res.status).toBe(200);
  expect(sha256(Buffer.from(await res.arrayBuffer()))).toBe(digest);
}

/** The attack has run its course: the relay's target connection closed (or it never was dialled). */
async function settled(relay: Relay): Promise<Outcome> {
  await Promise.race([relay.finished, new Promise((resolve) => setTimeout(resolve, 15_000))]);
  return relay.outcome;
}

beforeAll(async () => {
  home = await mkdtemp(path.join(os.tmpdir(), "shoal-peer-relay-"));
  edge = await startEdgeProcess(home);
  blob = randomBytes(BLOB_BYTES);
  digest = await pushBlob(edge.url, "relay/blob", blob);
});
afterAll(async () => {
  for (const relay of relays) relay.server.close();
  await Promise.all(agents.map((a) => a.proc.stop()));
  await edge?.proc.stop();
  await rm(home, { recursive: true, force: true });
});

describe("the peer handshake is bound to its connection", () => {
  it("a handshake relayed to a third agent's peer port opens nothing there", async () => {
    const seeder = await agent();
    await pullThrough(seeder);
    const relay = await new Relay(seeder.peerPort).listen();
    relays.push(relay);
    await relay.announce();

    const victim = await agent();
    await pullThrough(victim); // handed out the seeder and the relay; dials both
    const outcome = await settled(relay);
    expect(outcome.relayed).toBe(true);
    expect(outcome.bitfield).toBe(false);
    expect(outcome.piece).toBeUndefined();
    expect(outcome.errors).toContain(WIRE_ERROR.UNAUTHORIZED);
    // The honest agents still share pieces with each other.
    expect(await victim.metric("shoal_agent_bytes_downloaded_total", '{source="peer"}')).toBeGreaterThan(0);
  });

  it("a handshake reflected back to the dialling agent's own peer port opens nothing", async () => {
    const victim = await agent();
    const relay = await new Relay(victim.peerPort).listen();
    relays.push(relay);
    await relay.announce();
    await pullThrough(victim);
    const outcome = await settled(relay);
    expect(outcome.relayed).toBe(true);
    expect(outcome.bitfield).toBe(false);
    expect(outcome.piece).toBeUndefined();
    expect(outcome.errors).toContain(WIRE_ERROR.UNAUTHORIZED);
  });
});

