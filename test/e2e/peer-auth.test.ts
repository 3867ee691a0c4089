import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import os from "node:os";
import path from "node:path";
import tls from "node:tls";
import { readFile } from "node:fs/promises";
import { freePort } from "../helpers/devcluster.js";
import { run } from "../helpers/images.js";
import { startAgentProcess, startEdgeProcess, type AgentHandle } from "../helpers/processes.js";
import { pushBlob, sha256 } from "../helpers/registry-client.js";
import { WireClient } from "../helpers/wire-client.js";
import { WIRE_ERROR, type Frame } from "../../src/shared/p2p/wire/frames.js";
import { pieceCount, pieceLengthFor } from "../../src/shared/p2p/metainfo.js";

/**
 * Peers prove they share the cluster secret before any piece moves, and can run over mutual TLS.
 * Real agent processes, real TCP, pieces counted by each agent's metrics.
 */
const SECRET = randomBytes(32).toString("hex");
const OTHER_SECRET = randomBytes(32).toString("hex");
const BLOB_BYTES = 9 * 1024 * 1024 + 100;
const PIECES = pieceCount(BLOB_BYTES, pieceLengthFor(BLOB_BYTES));

let home: string;
let edge: Awaited<ReturnType<typeof startEdgeProcess>>;
let blob: Buffer;
let digest: string;
const agents: AgentHandle[] = [];

async function secretsFile(secret: string): Promise<string> {
  const file = path.join(home, `secrets-${randomBytes(4).toString("hex")}.yaml`);
  await writeFile(file, `clusterSecret: "${secret}"\n`, { mode: 0o600 });
  return file;
}

async function agent(extra: string[]): Promise<AgentHandle & { peerPort: number }> {
  const ports: [number, number, number] = [await freePort(), await freePort(), await freePort()];
  const handle = await startAgentProcess(edge.url, { ports, extra: ["--peer-ip=127.0.0.1", ...extra] });
  agents.push(handle);
  return { ...handle, peerPort: ports[1] };
}

async function pullThrough(a: AgentHandle): Promise<void> {
  const res = await fetch(`${a.registry}/v2/auth/blob/blobs/${digest}`);
  expect(res.status).toBe(200);
  expect(sha256(Buffer.from(await res.arrayBuffer()))).toBe(digest);
}

const peerBytes = (a: AgentHandle) => a.metric("shoal_agent_bytes_downloaded_total", '{source="peer"}');
const errorOf = (frames: Frame[]) => frames.find((f): f is Extract<Frame, { type: "error" }> => f.type === "error");

beforeAll(async () => {
  home = await mkdtemp(path.join(os.tmpdir(), "shoal-peer-auth-"));
  edge = await startEdgeProcess(home);
  blob = randomBytes(BLOB_BYTES);
  digest = await pushBlob(edge.url, "auth/blob", blob);
});
afterAll(async () => {
  await Promise.all(agents.map((a) => a.proc.stop()));
  await edge?.proc.stop();
  await rm(home, { recursive: true, force: true });
});

describe("cluster secret", () => {
  let seeder: AgentHandle & { peerPort: number };
  beforeAll(async () => {
    seeder = await agent(["--secrets", await secretsFile(SECRET)]);
    await pullThrough(seeder);
  });

  it("refuses a peer that does not authenticate, or proves the wrong secret, before saying what it holds", async () => {
    const anonymous = await WireClient.connect(seeder.peerPort);
    anonymous.handshake(digest, PIECES);
    let frames = await anonymous.until((f) => errorOf(f) !== undefined);
    expect(errorOf(frames)?.code).toBe(WIRE_ERROR.UNAUTHORIZED);
    expect(frames.some((f) => f.type === "handshake" || f.type === "bitfield")).toBe(false);
    await anonymous.until(() => anonymous.closed);

    const impostor = await WireClient.connect(seeder.peerPort);
    // The seeder's proof does not verify with the wrong secret, and ours does not with its.
    expect(await impostor.authenticate(digest, PIECES, OTHER_SECRET)).toBe(false);
    frames = await impostor.until((f) => errorOf(f) !== undefined);
    expect(errorOf(frames)?.code).toBe(WIRE_ERROR.UNAUTHORIZED);
    expect(frames.some((f) => f.type === "bitfield" || f.type === "piece")).toBe(false);
    // Its handshake reply said nothing about the pieces.
    const reply = frames.find((f) => f.type === "handshake");
    expect(reply?.type === "handshake" && reply.bitfield.every((b) => b === 0)).toBe(true);
    await impostor.until(() => impostor.closed);
  });

  it("serves a peer that proves the secret", async () => {
    const member = await WireClient.connect(seeder.peerPort);
    expect(await member.authenticate(digest, PIECES, SECRET)).toBe(true);
    await member.until((f) => f.some((x) => x.type === "bitfield"));
    member.send({ type: "request", index: PIECES - 1, begin: 0, length: 100 });
    const frames = await member.until((f) => f.some((x) => x.type === "piece"));
    const piece = frames.find((f): f is Extract<Frame, { type: "piece" }> => f.type === "piece")!;
    const start = (PIECES - 1) * pieceLengthFor(BLOB_BYTES);
    expect(Buffer.from(piece.data).equals(blob.subarray(start, start + 100))).toBe(true);
    member.close();
  });

  it("agents with the secret share pieces; an agent with another secret gets none from them and gives none", async () => {
    const member = await agent(["--secrets", await secretsFile(SECRET)]);
    await pullThrough(member);
    expect(await peerBytes(member)).toBeGreaterThanOrEqual(blob.length / 2);

    const outsider = await agent(["--secrets", await secretsFile(OTHER_SECRET)]);
    await pullThrough(outsider); // from the web seed alone
    expect(await peerBytes(outsider)).toBe(0);

    const open = await agent([]); // no secret at all
    await pullThrough(open);
    expect(await peerBytes(open)).toBe(0);
    // And the members never took a byte from the outsiders (the seeder had it all from the start).
    expect(await peerBytes(seeder)).toBe(0);
  });
});

describe("mutual TLS on the peer port", () => {
  let pki: string;
  let seeder: AgentHandle & { peerPort: number };
  const openssl = (args: string[]) => run("openssl", args, { cwd: pki });

  async function makeCa(name: string): Promise<void> {
    await openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.crt`, "-days", "2", "-subj", `/CN=${name}`]);
  }
  async function makeCert(ca: string, name: string): Promise<void> {
    await openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${name}`]);
    await writeFile(path.join(pki, `${name}.ext`), "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n");
    await openssl(["x509", "-req", "-in", `${name}.csr`, "-CA", `${ca}.crt`, "-CAkey", `${ca}.key`, "-CAcreateserial", "-out", `${name}.crt`, "-days", "2", "-extfile", `${name}.ext`]);
  }
  async function tlsConfig(name: string): Promise<string> {
    const file = path.join(pki, `${name}.yaml`);
    await writeFile(file, `p2p:\n  tls:\n    cert: ${path.join(pki, `${name}.crt`)}\n    key: ${path.join(pki, `${name}.key`)}\n    ca: ${path.join(pki, "ca.crt")}\n`);
    return file;
  }

  beforeAll(async () => {
    pki = await mkdtemp(path.join(home, "pki-"));
    await makeCa("ca");
    await makeCa("rogue-ca");
    for (const name of ["one", "two"]) await makeCert("ca", name);
    await makeCert("rogue-ca", "rogue");
    seeder = await agent(["--secrets", await secretsFile(SECRET), "--config", await tlsConfig("one")]);
    await pullThrough(seeder);
  });

  it("agents with certificates from the cluster CA share pieces over TLS", async () => {
    const two = await agent(["--secrets", await secretsFile(SECRET), "--config", await tlsConfig("two")]);
    await pullThrough(two);
    expect(await peerBytes(two)).toBeGreaterThanOrEqual(blob.length / 2);
  });

  it("a plain TCP peer and a TLS peer with another CA's certificate get no frame", async () => {
    const plain = await WireClient.connect(seeder.peerPort);
    plain.handshake(digest, PIECES);
    await plain.until(() => plain.closed, 10_000);
    expect(plain.frames).toEqual([]);

    const [cert, key, ca] = await Promise.all(["rogue.crt", "rogue.key", "ca.crt"].map((f) => readFile(path.join(pki, f))));
    const outcome = await new Promise<string>((resolve) => {
      const socket = tls.connect({ host: "127.0.0.1", port: seeder.peerPort, cert, key, ca, minVersion: "TLSv1.3" });
      let received = 0;
      socket.on("data", (d: Buffer) => (received += d.length));
      socket.on("error", (e) => resolve(`error: ${e.message}`));
      socket.on("close", () => resolve(`closed after ${received} bytes`));
    });
    // TLS 1.3 finishes the client's side before the server checks its certificate: the server
    // then alerts and closes, having sent no application data.
    expect(outcome).toMatch(/error|closed after 0 bytes/);
  });
});
