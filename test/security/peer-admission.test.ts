import { afterAll, beforeAll, describe, expect, it } from "vitest";
import net from "node:net";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import os from "node:os";
import path from "node:path";
import { freePort } from "../helpers/devcluster.js";
import { startAgentProcess, startEdgeProcess, type AgentHandle } from "../helpers/processes.js";
import { pushBlob, sha256 } from "../helpers/registry-client.js";
import { WireClient } from "../helpers/wire-client.js";
import { AdmissionBook, networkOf } from "../../src/agent-node/p2p/admission.js";
import { pieceCount, pieceLengthFor } from "../../src/shared/p2p/metainfo.js";

/**
 * Hosts without the cluster secret must not be able to fill the peer port: connections that have
 * not authenticated have their own small budget (per /24 or /64 too) and a short deadline, so a
 * real peer still gets in while 128 idle sockets from eight addresses sit on the port.
 */
describe("admission bookkeeping", () => {
  it("groups addresses by IPv4 /24 and IPv6 /64", () => {
    const cases: [string, string][] = [
      ["10.1.2.3", "10.1.2.0/24"],
      ["::ffff:10.1.2.200", "10.1.2.0/24"],
      ["2001:db8:1:2:aa::1", "2001:db8:1:2::/64"],
      ["2001:db8:1:2:bb:cc:dd:ee", "2001:db8:1:2::/64"],
      ["2001:db8::1", "2001:db8:0:0::/64"],
      ["::1", "0:0:0:0::/64"],
      ["fe80::1%eth0", "fe80:0:0:0::/64"],
    ];
    for (const [address, network] of cases) expect(networkOf(address), address).toBe(network);
  });

  const ticketOf = (admit: ReturnType<AdmissionBook["admit"]>) => {
    if (!("ticket" in admit)) throw new Error(`refused: ${admit.refused}`);
    return admit;
  };

  it("a newcomer to a network whose waiting budget is full pushes out that network's oldest", () => {
    const book = new AdmissionBook({ maxConnections: 8, maxPerAddress: 8, maxWaiting: 8, maxWaitingPerPrefix: 2 });
    const first = ticketOf(book.admit("10.0.0.1"));
    ticketOf(book.admit("10.0.0.2"));
    const other = ticketOf(book.admit("10.9.0.1"));
    expect(ticketOf(book.admit("10.0.0.3")).evicted).toEqual([first.ticket]);
    expect(first.ticket.state).toBe("gone");
    expect(other.ticket.state).toBe("waiting");
    expect(book.counts.waiting).toBe(3);
  });

  it("a newcomer when all waiting slots are taken pushes out the oldest of all", () => {
    const book = new AdmissionBook({ maxConnections: 8, maxPerAddress: 8, maxWaiting: 3, maxWaitingPerPrefix: 8 });
    const oldest = ticketOf(book.admit("10.1.0.1"));
    ticketOf(book.admit("10.2.0.1"));
    ticketOf(book.admit("10.3.0.1"));
    expect(ticketOf(book.admit("10.4.0.1")).evicted).toEqual([oldest.ticket]);
    expect(book.counts.waiting).toBe(3);
  });

  it("established connections have their own budget; an address its own cap", () => {
    const book = new AdmissionBook({ maxConnections: 1, maxPerAddress: 2, maxWaiting: 8, maxWaitingPerPrefix: 8 });
    const one = ticketOf(book.admit("10.0.0.1"));
    const two = ticketOf(book.admit("10.0.1.1"));
    expect(book.establish(one.ticket)).toBeUndefined();
    expect(book.establish(two.ticket)).toBe("too many connections");
    expect(book.counts).toEqual({ waiting: 1, established: 1 });
    ticketOf(book.admit("10.0.0.1"));
    expect(book.admit("10.0.0.1")).toEqual({ refused: "too many connections from this address" });
    book.release(one.ticket);
    book.release(one.ticket); // idempotent
    expect(book.counts).toEqual({ waiting: 2, established: 0 });
    ticketOf(book.admit("10.0.0.1"));
  });
});

const SECRET = randomBytes(32).toString("hex");
const BLOB_BYTES = 3 * 1024 * 1024 + 7;
const PIECES = pieceCount(BLOB_BYTES, pieceLengthFor(BLOB_BYTES));

describe("a real agent's peer port under idle connections", () => {
  let home: string;
  let edge: Awaited<ReturnType<typeof startEdgeProcess>>;
  let agent: AgentHandle;
  let peerPort: number;
  let digest: string;
  const sockets: net.Socket[] = [];

  beforeAll(async () => {
    home = await mkdtemp(path.join(os.tmpdir(), "shoal-admission-"));
    edge = await startEdgeProcess(home);
    digest = await pushBlob(edge.url, "admission/blob", randomBytes(BLOB_BYTES));
    const secrets = path.join(home, "secrets.yaml");
    await writeFile(secrets, `clusterSecret: "${SECRET}"\n`, { mode: 0o600 });
    peerPort = await freePort();
    agent = await startAgentProcess(edge.url, { ports: [await freePort(), peerPort, await freePort()], extra: ["--peer-ip=127.0.0.1", "--secrets", secrets] });
    const res = await fetch(`${agent.registry}/v2/admission/blob/blobs/${digest}`);
    expect(sha256(Buffer.from(await res.arrayBuffer()))).toBe(digest);
  });
  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    await agent?.proc.stop();
    await edge?.proc.stop();
    await rm(home, { recursive: true, force: true });
  });

  it("a real peer is served while 128 sockets from 127.0.0.2-9 sit idle on the port", async () => {
    const idle = async (localAddress: string) => {
      const socket = net.connect({ port: peerPort, host: "127.0.0.1", localAddress });
      socket.on("error", () => undefined);
      socket.resume();
      sockets.push(socket);
      await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
    };
    try {
      await Promise.all(Array.from({ length: 128 }, (_, i) => idle(`127.0.0.${2 + (i % 8)}`)));
      const member = await WireClient.connect(peerPort);
      expect(await member.authenticate(digest, PIECES, SECRET)).toBe(true);
      const frames = await member.until((f) => f.some((x) => x.type === "bitfield" || x.type === "error"));
      expect(frames.map((f) => f.type)).toContain("bitfield");
      member.close();
    } finally {
      for (const socket of sockets.splice(0)) socket.destroy();
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  });

  it("a connection that opens its handshake and goes quiet is closed within the deadline (not one per frame)", async () => {
    const quiet = await WireClient.connect(peerPort);
    const started = Date.now();
    // Just inside the time for a first frame, a handshake that asks for authentication; then
    // never a proof. A deadline per frame held this socket twice as long.
    await new Promise((resolve) => setTimeout(resolve, 3_500));
    expect(quiet.closed).toBe(false);
    quiet.handshake(digest, PIECES, true);
    await quiet.until(() => quiet.closed, 15_000);
    expect(quiet.closed).toBe(true);
    expect(Date.now() - started).toBeLessThan(7_000);
  });
});
