import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, readlink, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Agent, request } from "undici";
import { startAgentProcess, startEdgeProcess, type AgentHandle } from "../helpers/processes.js";
import { pushImage, sha256 } from "../helpers/registry-client.js";

/** One agent under many clients at once: every answer right, and no descriptor left open after. */
let home: string;
let edge: Awaited<ReturnType<typeof startEdgeProcess>>;
let agent: AgentHandle;
let layer: Buffer;
let image: Awaited<ReturnType<typeof pushImage>>;

beforeAll(async () => {
  home = await mkdtemp(path.join(os.tmpdir(), "shoal-load-"));
  edge = await startEdgeProcess(home);
  agent = await startAgentProcess(edge.url);
  layer = randomBytes(6 * 1024 * 1024 + 7);
  image = await pushImage(edge.url, "load/app", "v1", [layer]);
});
afterAll(async () => {
  await agent?.proc.stop();
  await edge?.proc.stop();
  await rm(home, { recursive: true, force: true });
});

/** The agent's open descriptors: files (store blobs, logs) and sockets. */
async function openDescriptors(): Promise<{ files: number; sockets: number }> {
  const dir = `/proc/${agent.proc.programPid()}/fd`;
  const targets = await Promise.all((await readdir(dir)).map((fd) => readlink(path.join(dir, fd)).catch(() => "")));
  const sockets = targets.filter((t) => t.startsWith("socket:")).length;
  return { files: targets.length - sockets, sockets };
}

describe("an agent under load", () => {
  it("answers 300 concurrent manifest reads and 60 concurrent blob reads correctly, and leaks no descriptor", async () => {
    const layerDigest = image.manifest.layers[0]!.digest;
    // Warm: the first pull fetches into the store (what follows is served from it).
    const warm = await fetch(`${agent.registry}/v2/load/app/blobs/${layerDigest}`);
    expect(sha256(Buffer.from(await warm.arrayBuffer()))).toBe(layerDigest);
    await new Promise((r) => setTimeout(r, 500));
    const baseline = await openDescriptors();

    // A client of its own, closed at the end, so its sockets do not count against the agent.
    const client = new Agent({ connections: 400, pipelining: 0 });
    const accept = "application/vnd.oci.image.manifest.v1+json";
    const manifests = Array.from({ length: 300 }, async (_, i) => {
      const reference = i % 2 === 0 ? "v1" : image.digest;
      const res = await request(`${agent.registry}/v2/load/app/manifests/${reference}`, { dispatcher: client, headers: { accept } });
      const body = Buffer.from(await res.body.arrayBuffer());
      return res.statusCode === 200 && sha256(body) === image.digest;
    });
    const blobs = Array.from({ length: 60 }, async (_, i) => {
      const ranged = i % 2 === 1;
      const start = (i * 97_531) % (layer.length - 1_000_000);
      const res = await request(`${agent.registry}/v2/load/app/blobs/${layerDigest}`, {
        dispatcher: client,
        headers: ranged ? { range: `bytes=${start}-${start + 999_999}` } : {},
      });
      const body = Buffer.from(await res.body.arrayBuffer());
      return ranged ? res.statusCode === 206 && body.equals(layer.subarray(start, start + 1_000_000)) : res.statusCode === 200 && sha256(body) === layerDigest;
    });
    const results = await Promise.all([...manifests, ...blobs]);
    expect(results.filter((ok) => !ok)).toEqual([]);
    await client.close();

    // Every file and client socket is given back; a burst of tag lookups shares one edge request,
    // so at most a couple of kept-alive connections to the edge remain.
    const deadline = Date.now() + 10_000;
    let now = await openDescriptors();
    while ((now.files > baseline.files || now.sockets > baseline.sockets + 2) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      now = await openDescriptors();
    }
    expect(now.files).toBeLessThanOrEqual(baseline.files);
    expect(now.sockets).toBeLessThanOrEqual(baseline.sockets + 2);
    expect((await fetch(`${agent.admin}/health`)).status).toBe(200);
  });
});
