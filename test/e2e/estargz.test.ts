import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { gunzipSync } from "node:zlib";
import os from "node:os";
import path from "node:path";
import { startAgentProcess, startEdgeProcess, type AgentHandle } from "../helpers/processes.js";
import { startContainerd } from "../helpers/containerd.js";
import { run } from "../helpers/images.js";

/**
 * What a lazy-pulling snapshotter does, through an agent: an image converted to eStargz by
 * ctr-remote (Debian's stargz-snapshotter, against a containerd of the test's own) is pushed to
 * the edge; then its layer's footer, table of contents and one file are read by Range through a
 * cold agent, which fetches only the pieces those reads cover.
 */
const BIG_BYTES = 16 * 1024 * 1024;
const HELLO = "hello from a lazily pulled layer\n";
/** eStargz's footer: a gzip member whose extra field carries the TOC offset ("%016xSTARGZ"). */
const FOOTER_BYTES = 51;

let scratch: string;
let edge: Awaited<ReturnType<typeof startEdgeProcess>>;
let containerd: Awaited<ReturnType<typeof startContainerd>>;
let agent: AgentHandle;
const ctr = (binary: string, args: string[]) => run(binary, ["--address", containerd.socket, "--namespace", "shoal-estargz", ...args], { maxBuffer: 1 << 24 });

beforeAll(async () => {
  scratch = await mkdtemp(path.join(os.tmpdir(), "shoal-estargz-"));
  edge = await startEdgeProcess(path.join(scratch, "edge"));
  await mkdir(path.join(scratch, "containerd"));
  containerd = await startContainerd(path.join(scratch, "containerd"));
  // One layer with a big file and a small one (umoci: nothing is downloaded).
  const layout = path.join(scratch, "layout");
  const files = path.join(scratch, "files");
  await mkdir(files);
  await writeFile(path.join(files, "big.bin"), randomBytes(BIG_BYTES));
  // First in the tar (names sort), so its bytes sit at the layer's start, far from the TOC at its end.
  await writeFile(path.join(files, "a-hello.txt"), HELLO);
  await run("umoci", ["init", "--layout", layout]);
  await run("umoci", ["new", "--image", `${layout}:v1`]);
  await run("umoci", ["insert", "--image", `${layout}:v1`, files, "/data"], { maxBuffer: 1 << 24 });
  await run("skopeo", ["copy", "--dest-tls-verify=false", `oci:${layout}:v1`, `docker://${edge.host}/estargz/src:v1`]);
  // containerd pulls it from the edge, converts it, and pushes the eStargz image back.
  await ctr("ctr", ["images", "pull", "--plain-http", "--snapshotter", "native", `${edge.host}/estargz/src:v1`]);
  await ctr("ctr-remote", ["image", "convert", "--estargz", "--oci", `${edge.host}/estargz/src:v1`, `${edge.host}/estargz/lazy:v1`]);
  await ctr("ctr", ["images", "push", "--plain-http", `${edge.host}/estargz/lazy:v1`]);
  agent = await startAgentProcess(edge.url, { extra: ["--lazy-complete=never"] });
}, 300_000);
afterAll(async () => {
  await agent?.proc.stop();
  await containerd?.stop();
  await edge?.proc.stop();
  await rm(scratch, { recursive: true, force: true });
});

interface TocEntry {
  name: string;
  type: string;
  size?: number;
  offset?: number;
}

describe("an eStargz image through an agent", () => {
  it("reads the layer's footer, table of contents and one file by Range, fetching a small fraction of the layer", async () => {
    const manifestRes = await fetch(`${agent.registry}/v2/estargz/lazy/manifests/v1`, { headers: { Accept: "application/vnd.oci.image.manifest.v1+json" } });
    expect(manifestRes.status).toBe(200);
    const manifest = (await manifestRes.json()) as { layers: { digest: string; size: number; annotations?: Record<string, string> }[] };
    const layer = manifest.layers.find((l) => l.annotations?.["containerd.io/snapshot/stargz/toc.digest"]);
    expect(layer, "the converted layer carries its TOC digest").toBeDefined();
    const blob = `${agent.registry}/v2/estargz/lazy/blobs/${layer!.digest}`;
    const range = async (start: number, end: number) => {
      const res = await fetch(blob, { headers: { Range: `bytes=${start}-${end}` } });
      expect(res.status).toBe(206);
      return Buffer.from(await res.arrayBuffer());
    };

    const footer = await range(layer!.size - FOOTER_BYTES, layer!.size - 1);
    const mark = footer.indexOf("STARGZ");
    expect(mark).toBeGreaterThan(16);
    const tocOffset = parseInt(footer.subarray(mark - 16, mark).toString(), 16);
    const tocTar = gunzipSync(await range(tocOffset, layer!.size - FOOTER_BYTES - 1));
    // A tar with one member, stargz.index.json: its body follows the 512-byte header.
    expect(tocTar.subarray(0, 100).toString()).toContain("stargz.index.json");
    const tocSize = parseInt(tocTar.subarray(124, 136).toString().replace(/\0.*$/, "").trim(), 8);
    const toc = JSON.parse(tocTar.subarray(512, 512 + tocSize).toString()) as { entries: TocEntry[] };
    const hello = toc.entries.find((e) => e.name === "data/a-hello.txt");
    expect(hello?.offset).toBeDefined();
    const next = Math.min(tocOffset, ...toc.entries.map((e) => e.offset ?? Infinity).filter((o) => o > hello!.offset!));
    const file = gunzipSync(await range(hello!.offset!, next - 1));
    expect(file.toString()).toContain(HELLO);

    const fetched = (await agent.metric("shoal_agent_bytes_downloaded_total", '{source="origin"}')) + (await agent.metric("shoal_agent_bytes_downloaded_total", '{source="peer"}'));
    console.log(`eStargz layer of ${layer!.size} bytes: footer, TOC and one file read with ${fetched} bytes fetched (${((100 * fetched) / layer!.size).toFixed(1)}%)`);
    // The pieces under the file (the first) and under the footer and TOC (the last, short one):
    // a little over one piece of seventeen.
    const PIECE = 1024 * 1024;
    expect(fetched).toBeGreaterThan(PIECE);
    expect(fetched).toBeLessThanOrEqual(PIECE + (layer!.size % PIECE || PIECE) + PIECE);
    expect(fetched).toBeLessThanOrEqual(0.15 * layer!.size);
    expect(await agent.metric("shoal_agent_bytes_fetched_total", '{reader="range"}')).toBe(fetched);
  });
});
