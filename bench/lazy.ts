import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { request } from "undici";
import { parseSize } from "../src/agent-node/config.js";
import { PROJECT_ROOT } from "../src/devcluster/build-worker.js";
import { BenchProcess, TSX, freePorts, startBenchEdge } from "./lib/processes.js";
import { pushOneLayerImage } from "./lib/push.js";
import { renderSvg } from "./lib/plots.js";

export interface LazyBenchOptions {
  size: number;
  /** Random reads per mode. */
  reads: number;
  readBytes: number;
  out: string;
  seed: number;
  /** Tail reads, each on a fresh pair of agents (the ratio is taken between medians). */
  tailSamples: number;
}

export function parseLazyArgs(values: Record<string, string | boolean | undefined>): LazyBenchOptions {
  const size = parseSize(String(values.size ?? "1GiB"));
  const reads = Number(values.reads ?? 32);
  const readBytes = parseSize(String(values["read-size"] ?? "64KiB"));
  const tailSamples = Number(values["tail-samples"] ?? 5);
  if (!(size >= 4 * 1024 * 1024) || !Number.isInteger(reads) || reads < 1 || readBytes < 1 || readBytes > size || !Number.isInteger(tailSamples) || tailSamples < 1 || tailSamples > 8) {
    throw new Error("bench lazy: --size at least 4MiB, --reads a positive integer, --read-size at most --size, --tail-samples 1 to 8");
  }
  return { size, reads, readBytes, out: String(values.out ?? "bench-out"), seed: Number(values.seed ?? 1), tailSamples };
}

interface ReadFigures {
  offset: number;
  ttfb_ms: number;
  total_ms: number;
  /** Bytes the agent fetched (from peers and the edge) for this read; the read itself for the edge. */
  fetched_bytes: number;
  origin_bytes: number;
}

interface ModeFigures {
  reads: ReadFigures[];
  ttfb_ms: { p50: number; p90: number; max: number };
  fetched_bytes: number;
  origin_bytes: number;
}

export interface LazyReport {
  blob_bytes: number;
  read_bytes: number;
  reads: number;
  piece_bytes: number;
  /** Random reads over the blob: straight from the edge, through a cold agent, through an agent whose peer holds the pieces. */
  edge: ModeFigures;
  cold_agent: ModeFigures;
  warm_peer: ModeFigures;
  /**
   * The issue's target: a 1 MiB read at the end of the blob through a fresh agent, against one
   * piece read from the edge, and the same read on a second fresh agent. Sample k reads the k-th
   * last MiB on its own pair of agents; the figures are medians over the samples (the largest
   * cold agent fetch and second agent edge bytes), the ratio that of the medians.
   */
  tail_read: {
    edge_piece_ms: number;
    cold_agent_ms: number;
    cold_agent_fetched_bytes: number;
    second_agent_ms: number;
    second_agent_origin_bytes: number;
    ratio_to_edge_piece: number;
    samples: TailSample[];
  };
  wall_s: number;
}

interface TailSample {
  offset: number;
  edge_piece_ms: number;
  cold_agent_ms: number;
  cold_agent_fetched_bytes: number;
  second_agent_ms: number;
  second_agent_origin_bytes: number;
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};
const round1 = (n: number) => Math.round(n * 10) / 10;

/** How long fresh agents are left to finish starting before a tail sample is timed. */
const SETTLE_MS = 2_000;

const NAME = "bench/lazy";
const WARMUP_NAME = "bench/lazy-warmup";
const progress = (line: string) => console.error(`bench lazy: ${line}`);

/** A seeded sequence of offsets (the same for every mode), aligned to nothing in particular. */
function offsets(count: number, size: number, readBytes: number, seed: number): number[] {
  let x = seed >>> 0 || 1;
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out.push(Math.floor((x / 2 ** 32) * (size - readBytes)));
  }
  return out;
}

/** One Range read: time to the first body byte and to the last. */
async function timedRead(url: string, start: number, end: number): Promise<{ ttfb: number; total: number; bytes: number }> {
  const began = performance.now();
  const res = await request(url, { headers: { range: `bytes=${start}-${end}` } });
  if (res.statusCode !== 206) throw new Error(`${url} answered ${res.statusCode} to a Range read: ${(await res.body.text()).slice(0, 200)}`);
  let ttfb = 0;
  let bytes = 0;
  for await (const chunk of res.body) {
    if (bytes === 0) ttfb = performance.now() - began;
    bytes += (chunk as Buffer).length;
  }
  if (bytes !== end - start + 1) throw new Error(`${url}: ${bytes} bytes for a ${end - start + 1}-byte range`);
  return { ttfb, total: performance.now() - began, bytes };
}

interface Agent {
  proc: BenchProcess;
  registry: string;
  admin: string;
}

async function metric(agent: Agent, name: string, labels = ""): Promise<number> {
  const text = await (await request(`${agent.admin}/metrics`)).body.text();
  const line = text.split("\n").find((l) => l.startsWith(`${name}${labels} `));
  return line ? Number(line.split(" ").pop()) : 0;
}
const originOf = (a: Agent) => metric(a, "shoal_agent_bytes_downloaded_total", '{source="origin"}');
const fetchedOf = async (a: Agent) => (await originOf(a)) + (await metric(a, "shoal_agent_bytes_downloaded_total", '{source="peer"}'));

function summarize(reads: ReadFigures[]): ModeFigures {
  const sorted = reads.map((r) => r.ttfb_ms).sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  const round = (n: number) => Math.round(n * 10) / 10;
  return {
    reads,
    ttfb_ms: { p50: round(at(0.5)), p90: round(at(0.9)), max: round(sorted[sorted.length - 1]!) },
    fetched_bytes: reads.reduce((n, r) => n + r.fetched_bytes, 0),
    origin_bytes: reads.reduce((n, r) => n + r.origin_bytes, 0),
  };
}

async function readsThrough(target: string, agent: Agent | undefined, at: number[], readBytes: number): Promise<ReadFigures[]> {
  const out: ReadFigures[] = [];
  for (const offset of at) {
    const fetchedBefore = agent ? await fetchedOf(agent) : 0;
    const originBefore = agent ? await originOf(agent) : 0;
    const read = await timedRead(target, offset, offset + readBytes - 1);
    out.push({
      offset,
      ttfb_ms: Math.round(read.ttfb * 10) / 10,
      total_ms: Math.round(read.total * 10) / 10,
      fetched_bytes: agent ? (await fetchedOf(agent)) - fetchedBefore : read.bytes,
      origin_bytes: agent ? (await originOf(agent)) - originBefore : read.bytes,
    });
  }
  return out;
}

/**
 * `npm run bench -- lazy`: what a lazy-pulling snapshotter sees. Random 64 KiB Range reads over a
 * 1 GiB layer, straight from the edge, through a cold agent (it fetches the pieces each read
 * covers), and through a second agent whose peer (the first) holds them: time to first byte and
 * bytes fetched. Then the issue's target: a 1 MiB read at the end of the blob through a fresh
 * agent, against one piece read from the edge, and the same read on a second fresh agent.
 * Agents run with --lazy-complete=never, so what they fetch is what the reads asked for.
 */
export async function benchLazy(options: LazyBenchOptions): Promise<LazyReport> {
  const wallStart = Date.now();
  await mkdir(options.out, { recursive: true });
  const home = await mkdtemp(path.join(os.tmpdir(), "shoal-bench-lazy-"));
  const procs: BenchProcess[] = [];
  try {
    const [edgePort] = (await freePorts(1)) as [number];
    const edge = await startBenchEdge(edgePort, path.join(home, "edge"));
    procs.push(edge);
    const edgeUrl = `http://127.0.0.1:${edgePort}`;
    progress(`pushing a ${options.size}-byte layer`);
    const { layerDigest } = await pushOneLayerImage(edgeUrl, NAME, "v1", randomBytes(options.size));
    const warmup = await pushOneLayerImage(edgeUrl, WARMUP_NAME, "v1", randomBytes(2 * 1024 * 1024));
    const metainfo = (await (await request(`${edgeUrl}/shoal/v1/${NAME}/metainfo/${layerDigest}`)).body.json()) as { pieceLength: number };

    const startAgent = async (n: number): Promise<Agent> => {
      const [registry, peer, admin] = (await freePorts(3)) as [number, number, number];
      const proc = await BenchProcess.start(
        TSX,
        [
          path.join(PROJECT_ROOT, "src/agent-node/main.ts"),
          "agent",
          `--edge=${edgeUrl}`,
          `--store-dir=${path.join(home, `agent-${n}`)}`,
          `--agent-registry-port=${registry}`,
          `--peer-port=${peer}`,
          `--agent-server-port=${admin}`,
          "--lazy-complete=never",
          `--log-level=${process.env.SHOAL_BENCH_AGENT_LOG_LEVEL ?? "warn"}`,
        ],
        `http://127.0.0.1:${admin}/health`,
      );
      procs.push(proc);
      const agent = { proc, registry: `http://127.0.0.1:${registry}`, admin: `http://127.0.0.1:${admin}` };
      // A warm process, as on a host that has pulled before: connections to the edge are open.
      await timedRead(`${agent.registry}/v2/${WARMUP_NAME}/blobs/${warmup.layerDigest}`, 1024 * 1024, 1024 * 1024 + 1023);
      return agent;
    };
    const edgeBlob = `${edgeUrl}/v2/${NAME}/blobs/${layerDigest}`;
    const agentBlob = (a: Agent) => `${a.registry}/v2/${NAME}/blobs/${layerDigest}`;
    // The edge's first read of the object (its storage's cold start) is not the agents' cost.
    await timedRead(edgeBlob, 0, 0);
    const at = offsets(options.reads, options.size, options.readBytes, options.seed);

    progress(`${options.reads} random ${options.readBytes}-byte reads: the edge directly`);
    const edgeReads = await readsThrough(edgeBlob, undefined, at, options.readBytes);
    const [first, second] = [await startAgent(1), await startAgent(2)];
    progress("the same reads through a cold agent");
    const coldReads = await readsThrough(agentBlob(first), first, at, options.readBytes);
    progress("the same reads through a second agent (its peer holds the pieces)");
    const peerReads = await readsThrough(agentBlob(second), second, at, options.readBytes);

    const piece = Math.min(metainfo.pieceLength, options.size);
    const mib = 1024 * 1024;
    const samples: TailSample[] = [];
    for (let k = 0; k < options.tailSamples; k++) {
      progress(`1 MiB near the end of the blob (sample ${k + 1} of ${options.tailSamples}): one piece from the edge, a fresh agent, a second fresh agent`);
      const end = options.size - 1 - k * mib;
      const [third, fourth] = [await startAgent(3 + 2 * k), await startAgent(4 + 2 * k)];
      // A host's agent is long-running: the new processes finish starting before the clock runs,
      // and the edge's piece is timed right before the cold read, on the same machine state.
      await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
      const edgePiece = await timedRead(edgeBlob, Math.max(0, end + 1 - piece), end);
      const before = await fetchedOf(third); // the warm-up read's piece
      const cold = await timedRead(agentBlob(third), end + 1 - mib, end);
      const coldFetched = (await fetchedOf(third)) - before;
      const originBefore = await originOf(fourth);
      const secondRead = await timedRead(agentBlob(fourth), end + 1 - mib, end);
      samples.push({
        offset: end + 1 - mib,
        edge_piece_ms: round1(edgePiece.total),
        cold_agent_ms: round1(cold.total),
        cold_agent_fetched_bytes: coldFetched,
        second_agent_ms: round1(secondRead.total),
        second_agent_origin_bytes: (await originOf(fourth)) - originBefore,
      });
    }
    const edgePieceMs = median(samples.map((t) => t.edge_piece_ms));
    const coldMs = median(samples.map((t) => t.cold_agent_ms));
    const report: LazyReport = {
      blob_bytes: options.size,
      read_bytes: options.readBytes,
      reads: options.reads,
      piece_bytes: metainfo.pieceLength,
      edge: summarize(edgeReads),
      cold_agent: summarize(coldReads),
      warm_peer: summarize(peerReads),
      tail_read: {
        edge_piece_ms: round1(edgePieceMs),
        cold_agent_ms: round1(coldMs),
        cold_agent_fetched_bytes: Math.max(...samples.map((t) => t.cold_agent_fetched_bytes)),
        second_agent_ms: round1(median(samples.map((t) => t.second_agent_ms))),
        second_agent_origin_bytes: Math.max(...samples.map((t) => t.second_agent_origin_bytes)),
        ratio_to_edge_piece: Math.round((coldMs / edgePieceMs) * 100) / 100,
        samples,
      },
      wall_s: Math.round((Date.now() - wallStart) / 100) / 10,
    };
    const file = path.join(options.out, "lazy.json");
    await writeFile(file, `${JSON.stringify(report, null, 2)}\n`);
    await writeFile(path.join(options.out, "lazy.svg"), await plot(report));
    const line = (name: string, m: ModeFigures) =>
      `${name.padEnd(10)} ttfb p50 ${m.ttfb_ms.p50} ms, p90 ${m.ttfb_ms.p90} ms, max ${m.ttfb_ms.max} ms; fetched ${m.fetched_bytes} bytes (${m.origin_bytes} from the edge)`;
    console.log(`\nlazy benchmark: ${options.reads} random ${options.readBytes}-byte reads over a ${options.size}-byte layer (${metainfo.pieceLength}-byte pieces)`);
    console.log(line("edge", report.edge));
    console.log(line("cold agent", report.cold_agent));
    console.log(line("warm peer", report.warm_peer));
    const t = report.tail_read;
    const spread = (pick: (t: TailSample) => number) => `${Math.min(...t.samples.map(pick))}-${Math.max(...t.samples.map(pick))}`;
    console.log(
      `1 MiB at the end, median of ${t.samples.length}: one piece from the edge ${t.edge_piece_ms} ms (${spread((s) => s.edge_piece_ms)}); cold agent ${t.cold_agent_ms} ms (${spread((s) => s.cold_agent_ms)}; ${t.ratio_to_edge_piece}x, at most ${t.cold_agent_fetched_bytes} bytes fetched); second agent ${t.second_agent_ms} ms (${t.second_agent_origin_bytes} bytes from the edge at most)`,
    );
    console.log(`written to ${file} and lazy.svg`);
    return report;
  } finally {
    for (const proc of procs.reverse()) await proc.stop().catch(() => undefined);
    await rm(home, { recursive: true, force: true });
  }
}

/** Time to first byte of each read, by mode. */
function plot(report: LazyReport): Promise<string> {
  const rows = (["edge", "cold_agent", "warm_peer"] as const).flatMap((mode) => report[mode].reads.map((r, i) => ({ mode, read: i + 1, ttfb_ms: r.ttfb_ms })));
  return renderSvg({
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: `random ${report.read_bytes}-byte reads over a ${(report.blob_bytes / 2 ** 20).toFixed(0)} MiB layer: time to first byte`,
    width: 640,
    height: 320,
    data: { values: rows },
    mark: { type: "line", point: true },
    encoding: {
      x: { field: "read", type: "quantitative", title: "read" },
      y: { field: "ttfb_ms", type: "quantitative", title: "time to first byte (ms)", scale: { type: "log" } },
      color: { field: "mode", type: "nominal", title: "mode" },
    },
  });
}
