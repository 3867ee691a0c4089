import { afterAll, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { startAgentProcess, startEdgeProcess, type AgentHandle } from "../helpers/processes.js";
import { pushBlobChunked, pushImage, sha256 } from "../helpers/registry-client.js";

/**
 * The edge (and with it the tracker and the web seed) goes away: agents keep serving and finish from
 * peers. Each test has an edge of its own, on state of its own, and none is started again: an edge
 * restarted on the state of the one before sometimes met a fault of the runtime (workerd's main
 * thread spinning in V8's garbage-collection sweeper, answering nothing; see docs/operations.md),
 * which the edge recovers from (its front starts a new runtime) but which fails the request under way.
 */
const homes: string[] = [];
const edges: EdgeHandle[] = [];
const agents: AgentHandle[] = [];
type EdgeHandle = Awaited<ReturnType<typeof startEdgeProcess>>;

async function freshEdge(): Promise<EdgeHandle> {
  const home = await mkdtemp(path.join(os.tmpdir(), "shoal-outage-"));
  homes.push(home);
  const edge = await startEdgeProcess(home);
  edges.push(edge);
  return edge;
}

afterAll(async () => {
  await Promise.all(agents.map((a) => a.proc.stop()));
  await Promise.all(edges.map((e) => e.proc.stop()));
  await Promise.all(homes.map((home) => rm(home, { recursive: true, force: true })));
});

const accept = { accept: "application/vnd.oci.image.manifest.v1+json" };

describe("edge down", () => {
  it("an agent serves blobs, manifests by digest and tags as last resolved; an unknown tag is a clear error", async () => {
    const edge = await freshEdge();
    const layer = randomBytes(2 * 1024 * 1024);
    const image = await pushImage(edge.url, "outage/app", "v1", [layer]);
    const agent = await startAgentProcess(edge.url, { extra: ["--peer-ip=127.0.0.1"] });
    agents.push(agent);
    const layerDigest = image.manifest.layers[0]!.digest;
    expect((await fetch(`${agent.registry}/v2/outage/app/manifests/v1`, { headers: accept })).status).toBe(200);
    expect(sha256(Buffer.from(await (await fetch(`${agent.registry}/v2/outage/app/blobs/${layerDigest}`)).arrayBuffer()))).toBe(layerDigest);

    await edge.proc.stop();
    await new Promise((r) => setTimeout(r, 5_500)); // past the agent's tag cache (5 s): the tag must be asked again
    const byTag = await fetch(`${agent.registry}/v2/outage/app/manifests/v1`, { headers: accept });
    expect(byTag.status).toBe(200);
    expect(sha256(Buffer.from(await byTag.arrayBuffer()))).toBe(image.digest);
    const byDigest = await fetch(`${agent.registry}/v2/outage/app/manifests/${image.digest}`, { headers: accept });
    expect(byDigest.status).toBe(200);
    const blob = await fetch(`${agent.registry}/v2/outage/app/blobs/${layerDigest}`);
    expect(sha256(Buffer.from(await blob.arrayBuffer()))).toBe(layerDigest);
    expect(agent.proc.output).toMatch(/edge unreachable: serving the tag as last resolved/);
    expect((await fetch(`${agent.registry}/v2/`)).status).toBe(200); // the login check answers too

    const unknown = await fetch(`${agent.registry}/v2/outage/app/manifests/never`, { headers: accept, signal: AbortSignal.timeout(30_000) });
    expect(unknown.status).toBe(503);
    const body = (await unknown.json()) as { errors: { code: string; message: string }[] };
    expect(body.errors[0]!.message).toMatch(/edge is unavailable/);
  });

  it("agents part-way through a blob finish from the peer that has it when the tracker and web seed go away", async () => {
    const edge = await freshEdge();
    const blob = randomBytes(48 * 1024 * 1024);
    const digest = await pushBlobChunked(edge.url, "outage/blob", blob, 16 * 1024 * 1024);
    const seeder = await startAgentProcess(edge.url, { extra: ["--peer-ip=127.0.0.1"] });
    agents.push(seeder);
    expect(sha256(Buffer.from(await (await fetch(`${seeder.registry}/v2/outage/blob/blobs/${digest}`)).arrayBuffer()))).toBe(digest);
    // Two more agents, slow (8 MiB/s in): they take ~6 s, and the edge is gone after ~1.5 s.
    const slow = await Promise.all([0, 1].map(() => startAgentProcess(edge.url, { extra: ["--peer-ip=127.0.0.1", "--ingress-rate=8MiB"] })));
    agents.push(...slow);
    const pulls = slow.map(async (agent) => sha256(Buffer.from(await (await fetch(`${agent.registry}/v2/outage/blob/blobs/${digest}`)).arrayBuffer())));
    await new Promise((r) => setTimeout(r, 1_500));
    await edge.proc.stop("SIGKILL");
    expect(await Promise.all(pulls)).toEqual([digest, digest]);
    for (const agent of slow) {
      expect(await agent.metric("shoal_agent_bytes_downloaded_total", '{source="peer"}')).toBeGreaterThanOrEqual(blob.length / 2);
      expect(agent.proc.output).toMatch(/announce failed/);
    }
  });
});

describe("edge connection cut", () => {
  it("an agent reads the rest of a blob by Range when its stream from the edge breaks, and the client gets all of it", async () => {
    const edge = await freshEdge();
    const blob = randomBytes(8 * 1024 * 1024);
    const digest = await pushBlobChunked(edge.url, "outage/cut", blob, 8 * 1024 * 1024);
    // A proxy that cuts the first connection that has carried 3 MiB of answers (both sockets destroyed).
    let cut = 0;
    const sockets = new Set<net.Socket>();
    const proxy = net.createServer((client) => {
      const upstream = net.connect(Number(new URL(edge.url).port), "127.0.0.1");
      sockets.add(client).add(upstream);
      let down = 0;
      upstream.on("data", (chunk: Buffer) => {
        down += chunk.length;
        if (cut === 0 && down > 3 * 1024 * 1024) {
          cut++;
          client.destroy();
          upstream.destroy();
          return;
        }
        client.write(chunk);
      });
      client.on("data", (chunk: Buffer) => upstream.write(chunk));
      for (const socket of [client, upstream]) {
        socket.on("error", () => undefined);
        socket.on("close", () => (socket === client ? upstream : client).destroy());
      }
    });
    await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
    try {
      const agent = await startAgentProcess(`http://127.0.0.1:${(proxy.address() as net.AddressInfo).port}`, { extra: ["--no-p2p"] });
      agents.push(agent);
      const res = await fetch(`${agent.registry}/v2/outage/cut/blobs/${digest}`);
      expect(res.status).toBe(200);
      expect(sha256(Buffer.from(await res.arrayBuffer()))).toBe(digest);
      expect(cut).toBe(1);
      expect(agent.proc.output).toMatch(/edge stream broke: reading the rest by Range/);
      expect(await agent.metric("shoal_agent_edge_fetches_total", '{kind="blob"}')).toBe(2);
    } finally {
      for (const socket of sockets) socket.destroy(); // the agent's keep-alive connections
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
    }
  });
});
