import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import os from "node:os";
import path from "node:path";
import { startAgentProcess, startEdgeProcess, type AgentHandle } from "../helpers/processes.js";
import { pushImage, sha256 } from "../helpers/registry-client.js";
import { skopeo } from "../helpers/images.js";

/**
 * Lazy pulls through the swarm (issue 26): a Range read of a blob an agent does not hold fetches
 * only the pieces that cover it (from peers that have them, else from the edge), a second agent's
 * read comes from the first agent's partial copy, and a whole pull of a partially held blob still
 * gets (and a real client verifies) every byte.
 */
const PIECE = 1024 * 1024;
const SIZE = 40 * PIECE + 12_345; // 41 pieces, the last one short
let home: string;
let edge: Awaited<ReturnType<typeof startEdgeProcess>>;
let one: AgentHandle;
let two: AgentHandle;
let layer: Buffer;
let digest: string;

const origin = (agent: AgentHandle) => agent.metric("shoal_agent_bytes_downloaded_total", '{source="origin"}');
const fromPeers = (agent: AgentHandle) => agent.metric("shoal_agent_bytes_downloaded_total", '{source="peer"}');
const forRange = (agent: AgentHandle) => agent.metric("shoal_agent_bytes_fetched_total", '{reader="range"}');

async function rangeRead(base: string, start: number, end: number): Promise<{ status: number; body: Buffer; ms: number; contentRange: string | null }> {
  const began = performance.now();
  const res = await fetch(`${base}/v2/lazy/image/blobs/${digest}`, { headers: { Range: `bytes=${start}-${end}` } });
  const body = Buffer.from(await res.arrayBuffer());
  return { status: res.status, body, ms: performance.now() - began, contentRange: res.headers.get("Content-Range") };
}

beforeAll(async () => {
  home = await mkdtemp(path.join(os.tmpdir(), "shoal-lazy-"));
  edge = await startEdgeProcess(home);
  layer = randomBytes(SIZE);
  const pushed = await pushImage(edge.url, "lazy/image", "v1", [layer]);
  digest = pushed.manifest.layers[0]!.digest;
  // Both agents keep their copies partial: what they hold is only what readers asked for.
  one = await startAgentProcess(edge.url, { extra: ["--lazy-complete=never"] });
  two = await startAgentProcess(edge.url, { extra: ["--lazy-complete=never"] });
}, 120_000);
afterAll(async () => {
  await one?.proc.stop();
  await two?.proc.stop();
  await edge?.proc.stop();
  await rm(home, { recursive: true, force: true });
});

describe("lazy pulls through the swarm", () => {
  it("a Range read at the end of a blob through a cold agent fetches only the two pieces that cover it", async () => {
    // One piece straight from the edge, for scale (the second read: the first warms the edge).
    await rangeRead(edge.url, 0, PIECE - 1);
    const direct = await rangeRead(edge.url, PIECE, 2 * PIECE - 1);
    const start = SIZE - PIECE; // spans the last two pieces
    const read = await rangeRead(one.registry, start, SIZE - 1);
    expect(read.status).toBe(206);
    expect(read.contentRange).toBe(`bytes ${start}-${SIZE - 1}/${SIZE}`);
    expect(read.body.equals(layer.subarray(start))).toBe(true);
    console.log(`1 MiB Range read at the end of a ${SIZE}-byte blob: cold agent ${read.ms.toFixed(0)} ms, one piece from the edge ${direct.ms.toFixed(0)} ms`);
    const fetched = await origin(one);
    // The two pieces that cover the range (the last one short), nothing more.
    expect(fetched).toBe(PIECE + 12_345);
    expect(await forRange(one)).toBe(fetched);
    expect(await one.metric("shoal_agent_edge_fetches_total", '{kind="metainfo"}')).toBe(1);
    expect(await one.metric("shoal_agent_partial_blobs")).toBe(1);
    expect(await one.metric("shoal_agent_partial_bytes")).toBe(fetched);
    expect(await one.metric("shoal_agent_blobs_total")).toBe(0);
  });

  it("serves pieces it holds at once, and fetches only the ones a new range adds", async () => {
    const before = await origin(one);
    const again = await rangeRead(one.registry, SIZE - 100, SIZE - 1);
    expect(again.body.equals(layer.subarray(SIZE - 100))).toBe(true);
    expect(await origin(one)).toBe(before);
    // A 64 KiB read in the middle: one more piece.
    const mid = 17 * PIECE + 5_000;
    const read = await rangeRead(one.registry, mid, mid + 65_535);
    expect(read.body.equals(layer.subarray(mid, mid + 65_536))).toBe(true);
    expect(await origin(one)).toBe(before + PIECE);
  });

  it("concurrent Range readers of one blob share one swarm session", async () => {
    const before = await origin(one);
    const at = 5 * PIECE;
    const reads = await Promise.all([0, 1, 2, 3].map((k) => rangeRead(one.registry, at + k * 1000, at + k * 1000 + 999)));
    for (const [k, read] of reads.entries()) expect(read.body.equals(layer.subarray(at + k * 1000, at + k * 1000 + 1000))).toBe(true);
    expect(await origin(one)).toBe(before + PIECE);
    expect(await one.metric("shoal_agent_edge_fetches_total", '{kind="metainfo"}')).toBe(1);
  });

  it("the same read on a second agent comes from the first agent's partial copy", async () => {
    const start = SIZE - PIECE;
    const read = await rangeRead(two.registry, start, SIZE - 1);
    expect(read.body.equals(layer.subarray(start))).toBe(true);
    console.log(`the same read on a second agent: ${read.ms.toFixed(0)} ms`);
    expect(await origin(two)).toBe(0);
    expect(await fromPeers(two)).toBe(PIECE + 12_345);
    expect(await one.metric("shoal_agent_bytes_uploaded_total")).toBeGreaterThanOrEqual(PIECE + 12_345);
  });

  it("a whole pull of the partially held blob by a real client gets every byte, verified against the digest", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "shoal-lazy-copy-"));
    try {
      // skopeo checks each blob's digest as it copies; the agent's copy was partial. (The second
      // agent holds two pieces and fetches nothing more: it announces so and takes no web-seed
      // slice, or this pull would wait on its pieces.)
      const began = performance.now();
      await skopeo(["copy", "--src-tls-verify=false", `docker://${one.registryHost}/lazy/image:v1`, `dir:${dir}`]);
      const copied = await readFile(path.join(dir, digest.slice("sha256:".length)));
      expect(sha256(copied)).toBe(digest);
      console.log(`a whole pull of the partly held ${SIZE}-byte layer: ${(performance.now() - began).toFixed(0)} ms`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    // The pull completed the blob: it is in the store, whole, and nothing was fetched twice.
    expect(await one.metric("shoal_agent_partial_blobs")).toBe(0);
    expect(await one.metric("shoal_agent_blobs_total")).toBeGreaterThanOrEqual(1);
    const fetched = (await origin(one)) + (await fromPeers(one));
    expect(fetched).toBeLessThanOrEqual(SIZE + 2 * PIECE); // the layer, and at most a piece or two of endgame duplicates
    expect(await one.metric("shoal_agent_bytes_fetched_total", '{reader="whole"}')).toBeGreaterThan(0);
  }, 120_000);
});

describe("lazy completion in the background (the default)", () => {
  it("after a Range read fetches the rest of the blob behind the reader, and the blob enters the store", async () => {
    const three = await startAgentProcess(edge.url);
    try {
      const start = 20 * PIECE;
      const read = await rangeRead(three.registry, start, start + PIECE - 1);
      expect(read.body.equals(layer.subarray(start, start + PIECE))).toBe(true);
      const deadline = Date.now() + 60_000;
      while ((await three.metric("shoal_agent_blobs_total")) < 1) {
        if (Date.now() > deadline) throw new Error("the blob was not completed in the background");
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(await three.metric("shoal_agent_partial_blobs")).toBe(0);
      expect(await forRange(three)).toBeGreaterThanOrEqual(PIECE);
      const whole = await fetch(`${three.registry}/v2/lazy/image/blobs/${digest}`);
      expect(sha256(Buffer.from(await whole.arrayBuffer()))).toBe(digest);
    } finally {
      await three.proc.stop();
    }
  }, 120_000);
});

describe("a partial copy nobody uses", () => {
  it("is parked after the seed window, kept across a restart, and resumed by the next read", async () => {
    const config = path.join(home, "short-window.yaml");
    await writeFile(config, "p2p:\n  seedWindowSeconds: 2\n");
    const four = await startAgentProcess(edge.url, { extra: ["--lazy-complete=never", `--config=${config}`] });
    const fetched = async () => (await origin(four)) + (await fromPeers(four));
    const downloads = async () => ((await (await fetch(`${four.admin}/v1/status`)).json()) as { downloads: { digest: string }[] }).downloads;
    try {
      const start = 30 * PIECE + 777;
      const read = await rangeRead(four.registry, start, start + 9_999);
      expect(read.body.equals(layer.subarray(start, start + 10_000))).toBe(true);
      expect(await fetched()).toBe(PIECE);
      // Nobody reads it for the window: its session stops (sockets closed, the tracker told), its piece stays.
      const deadline = Date.now() + 20_000;
      while ((await downloads()).length > 0) {
        if (Date.now() > deadline) throw new Error("the idle partial copy was not parked");
        await new Promise((r) => setTimeout(r, 200));
      }
      expect(four.proc.output).toContain("parking an idle partial copy");
      expect(await four.metric("shoal_agent_partial_blobs")).toBe(1);
      expect(await four.metric("shoal_agent_partial_bytes")).toBeGreaterThanOrEqual(PIECE);
      // The next read resumes it: the piece held is served, nothing fetched again.
      const again = await rangeRead(four.registry, start, start + 9_999);
      expect(again.body.equals(layer.subarray(start, start + 10_000))).toBe(true);
      expect(await fetched()).toBe(PIECE);
      expect(await four.metric("shoal_agent_edge_fetches_total", '{kind="metainfo"}')).toBe(1);
      // A restart: the parked copy is still there, counted, and serves the read.
      await four.proc.stop();
      await four.proc.start();
      expect(await four.metric("shoal_agent_partial_blobs")).toBe(1);
      const afterRestart = await rangeRead(four.registry, start, start + 9_999);
      expect(afterRestart.body.equals(layer.subarray(start, start + 10_000))).toBe(true);
      expect(await fetched()).toBe(0);
      expect(await four.metric("shoal_agent_edge_fetches_total", '{kind="metainfo"}')).toBe(0);
      // The metainfo beside the blob goes when a parked copy is evicted, even under a download that
      // began from it: a whole read that completes the blob writes it again (peers are served by it).
      const metainfoFile = path.join(four.storeDir, "blobs", "sha256", `${digest.slice("sha256:".length)}.metainfo.json`);
      await rm(metainfoFile);
      const whole = await fetch(`${four.registry}/v2/lazy/image/blobs/${digest}`);
      expect(sha256(Buffer.from(await whole.arrayBuffer()))).toBe(digest);
      const until = Date.now() + 10_000;
      while (!(await readFile(metainfoFile).then(() => true, () => false))) {
        if (Date.now() > until) throw new Error("the metainfo was not written beside the completed blob");
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(await four.metric("shoal_agent_partial_blobs")).toBe(0);
    } finally {
      await four.proc.stop();
    }
  }, 120_000);
});
