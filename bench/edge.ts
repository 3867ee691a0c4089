import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { request } from "undici";
import { parseSize } from "../src/agent-node/config.js";
import { startDistribution } from "../test/helpers/distribution.js";
import { processTree } from "../test/helpers/rss.js";
import { BenchProcess, freePorts, startBenchEdge } from "./lib/processes.js";
import { pushChunked } from "./lib/push.js";
import { renderSvg } from "./lib/plots.js";

export interface EdgeBenchOptions {
  size: number;
  rounds: number;
  /** Small requests per round, for the latency figures. */
  requests: number;
  out: string;
}

export function parseEdgeArgs(values: Record<string, string | boolean | undefined>): EdgeBenchOptions {
  return {
    size: parseSize(String(values.size ?? "64MiB")),
    rounds: Number(values.rounds ?? 3),
    requests: Number(values.requests ?? 200),
    out: String(values.out ?? "bench-out"),
  };
}

/** Where a registry is reached: the edge through its Node front, the edge's runtime directly, or distribution. */
type Target = "shoal" | "shoal_runtime" | "distribution";
const OPERATIONS = ["get", "range_get", "monolithic_put", "chunked_put"] as const;
type Operation = (typeof OPERATIONS)[number];

interface Transfer {
  bytes: number;
  seconds: number;
  mb_per_s: number;
  /** CPU seconds of the edge's runtime (workerd: the Worker, and miniflare's storage simulators) and of its Node front. */
  runtime_cpu_s?: number;
  front_cpu_s?: number;
}

interface Latency {
  p50_ms: number;
  p90_ms: number;
  p99_ms: number;
}

/**
 * `npm run bench -- edge`: the edge's data path against Debian's docker-registry (distribution
 * 2.8) on the same machine, in one run: GET and Range GET of a blob, a monolithic PUT and a chunked
 * PATCH+PUT push of one, and small-request latency (HEAD blob, GET manifest by tag). Reads are also
 * measured against the edge's runtime port directly, to show what the devcluster's Node front costs.
 * Rounds alternate between the registries so that neither gets a warmer machine.
 */
export async function benchEdge(options: EdgeBenchOptions): Promise<void> {
  const home = await mkdtemp(path.join(os.tmpdir(), "shoal-bench-edge-"));
  const procs: BenchProcess[] = [];
  try {
    const [edgePort, distributionPort] = (await freePorts(2)) as [number, number];
    progress(`starting the edge and distribution in ${home}`);
    const edge = await startBenchEdge(edgePort, home);
    procs.push(edge);
    const runtime = /"runtime":"([^"]+)"/.exec(edge.output)?.[1]?.replace(/\/$/, "");
    if (!runtime) throw new Error(`the edge did not log its runtime URL: ${edge.output.slice(-500)}`);
    const distribution = await startDistribution(path.join(home, "distribution"), distributionPort);
    procs.push(distribution);
    const bases: Record<Target, string> = { shoal: `http://127.0.0.1:${edgePort}`, shoal_runtime: runtime, distribution: `http://127.0.0.1:${distributionPort}` };
    const edgePid = edge.child.pid!;

    progress(`pushing a ${options.size}-byte blob and a manifest to both`);
    const blob = randomBytes(options.size);
    const digest = sha256(blob);
    for (const target of ["shoal", "distribution"] as const) {
      await pushWhole(bases[target], blob, digest);
      await pushManifest(bases[target], digest, options.size);
    }

    const transfers: Record<Target, Partial<Record<Operation, Transfer[]>>> = { shoal: {}, shoal_runtime: {}, distribution: {} };
    const latencies: Record<"shoal" | "distribution", { head_blob: Latency[]; get_manifest_by_tag: Latency[] }> = {
      shoal: { head_blob: [], get_manifest_by_tag: [] },
      distribution: { head_blob: [], get_manifest_by_tag: [] },
    };
    const record = (target: Target, op: Operation, t: Transfer) => (transfers[target][op] ??= []).push(t);
    for (let round = 1; round <= options.rounds; round++) {
      for (const target of ["shoal", "shoal_runtime", "distribution"] as const) {
        const base = bases[target];
        const cpu = target === "distribution" ? undefined : () => edgeCpu(edgePid);
        record(target, "get", await timed(options.size, cpu, () => readAll(`${base}/v2/bench/edge/blobs/${digest}`, options.size)));
        const half = Math.floor(options.size / 2);
        record(target, "range_get", await timed(options.size - half, cpu, () => readAll(`${base}/v2/bench/edge/blobs/${digest}`, options.size - half, `bytes=${half}-`)));
        if (target === "shoal_runtime") continue; // pushes go through the front only (the runtime's port stalls TLS-probing clients)
        // Fresh bytes for each push: a blob the registry holds is not uploaded again.
        const mono = randomBytes(options.size);
        record(target, "monolithic_put", await timed(options.size, cpu, () => pushWhole(base, mono, sha256(mono))));
        const chunked = randomBytes(options.size);
        record(target, "chunked_put", await timed(options.size, cpu, () => pushInChunks(base, chunked, 4)));
        latencies[target].head_blob.push(await latency(options.requests, () => small(`${base}/v2/bench/edge/blobs/${digest}`, "HEAD")));
        latencies[target].get_manifest_by_tag.push(await latency(options.requests, () => small(`${base}/v2/bench/edge/manifests/latest`, "GET")));
      }
      for (const target of ["shoal", "shoal_runtime", "distribution"] as const) {
        const line = OPERATIONS.map((op) => transfers[target][op]?.at(-1)).map((t, i) => (t ? `${OPERATIONS[i]} ${t.mb_per_s.toFixed(0)} MB/s` : "")).filter(Boolean);
        progress(`round ${round}: ${target.padEnd(14)} ${line.join(", ")}`);
      }
    }

    const summary = (ts: Transfer[] | undefined) => {
      if (!ts) return undefined;
      const rates = ts.map((t) => t.mb_per_s).sort((a, b) => a - b);
      const median = rates[Math.floor((rates.length - 1) / 2)]!;
      const perGiB = (cpu: (t: Transfer) => number | undefined) => (ts[0] && cpu(ts[0]) !== undefined ? medianOf(ts.map((t) => (cpu(t)! * 2 ** 30) / t.bytes)) : undefined);
      const cpuPerGiB = perGiB((t) => t.runtime_cpu_s);
      const frontPerGiB = perGiB((t) => t.front_cpu_s);
      return { median_mb_per_s: median, min_mb_per_s: rates[0]!, max_mb_per_s: rates.at(-1)!, median_s: medianOf(ts.map((t) => t.seconds)), ...(cpuPerGiB !== undefined ? { runtime_cpu_s_per_gib: cpuPerGiB } : {}), ...(frontPerGiB !== undefined ? { front_cpu_s_per_gib: frontPerGiB } : {}), rounds: ts };
    };
    const report = {
      benchmark: "edge",
      blob_bytes: options.size,
      rounds: options.rounds,
      small_requests_per_round: options.requests,
      machine: { cpus: os.cpus().length, memory_bytes: os.totalmem(), node: process.version, load_average: os.loadavg() },
      ...Object.fromEntries(
        (["shoal", "shoal_runtime", "distribution"] as const).map((target) => [
          target,
          {
            ...Object.fromEntries(OPERATIONS.flatMap((op) => (transfers[target][op] ? [[op, summary(transfers[target][op])]] : []))),
            ...(target === "shoal_runtime" ? {} : { latency: { head_blob: medianLatency(latencies[target].head_blob), get_manifest_by_tag: medianLatency(latencies[target].get_manifest_by_tag) } }),
          },
        ]),
      ),
    } as unknown as Record<string, unknown> & { shoal: Record<string, { median_mb_per_s: number }>; distribution: Record<string, { median_mb_per_s: number }> };
    report.ratio_to_distribution = Object.fromEntries(OPERATIONS.map((op) => [op, report.shoal[op]!.median_mb_per_s / report.distribution[op]!.median_mb_per_s]));
    await mkdir(options.out, { recursive: true });
    const file = path.join(options.out, "edge.json");
    await writeFile(file, `${JSON.stringify(report, null, 2)}\n`);
    await writeFile(path.join(options.out, "edge.svg"), await edgePlot(report as unknown as EdgeReportForPlot));
    const s = report.shoal as unknown as Record<Operation, { median_mb_per_s: number; runtime_cpu_s_per_gib?: number }>;
    const d = report.distribution as unknown as Record<Operation, { median_mb_per_s: number }>;
    console.log(`\nedge (median of ${options.rounds} rounds, ${(options.size / 2 ** 20).toFixed(0)} MiB):`);
    for (const op of OPERATIONS) {
      console.log(`  ${op.padEnd(15)} shoal ${s[op].median_mb_per_s.toFixed(0).padStart(5)} MB/s  distribution ${d[op].median_mb_per_s.toFixed(0).padStart(5)} MB/s  runtime CPU ${s[op].runtime_cpu_s_per_gib?.toFixed(2)} s/GiB`);
    }
    console.log(`written to ${file} and edge.svg`);
  } finally {
    for (const proc of procs.reverse()) await proc.stop();
    await rm(home, { recursive: true, force: true });
  }
}

type EdgeReportForPlot = Record<Target, Partial<Record<Operation, { median_mb_per_s: number; min_mb_per_s: number; max_mb_per_s: number }>>> & { blob_bytes: number; rounds: number };

/** Throughput of each operation, per registry: the median with the rounds' spread. */
function edgePlot(report: EdgeReportForPlot): Promise<string> {
  const rows = (["shoal", "shoal_runtime", "distribution"] as const).flatMap((target) =>
    OPERATIONS.flatMap((op) => {
      const m = report[target][op];
      return m ? [{ target, op, median: m.median_mb_per_s, min: m.min_mb_per_s, max: m.max_mb_per_s }] : [];
    }),
  );
  return renderSvg({
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: `Edge data path, ${(report.blob_bytes / 2 ** 20).toFixed(0)} MiB blob (median of ${report.rounds} rounds, bars show the spread)`,
    data: { values: rows },
    width: 520,
    height: 300,
    encoding: {
      x: { field: "op", type: "nominal", title: "operation", sort: [...OPERATIONS] },
      xOffset: { field: "target" },
      color: { field: "target", type: "nominal", title: "registry" },
    },
    layer: [
      { mark: "bar", encoding: { y: { field: "median", type: "quantitative", title: "MB/s" } } },
      { mark: { type: "rule", color: "black" }, encoding: { y: { field: "min", type: "quantitative" }, y2: { field: "max" } } },
    ],
  });
}

/** CPU seconds so far of the edge's processes: its runtime (workerd) and its Node front (with tsx). */
function edgeCpu(rootPid: number): { runtime: number; front: number } {
  let runtime = 0;
  let front = 0;
  for (const pid of processTree(rootPid)) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const seconds = (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, USER_HZ
      if (stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")) === "workerd") runtime += seconds;
      else front += seconds;
    } catch {
      // exited meanwhile
    }
  }
  return { runtime, front };
}

async function timed(bytes: number, cpu: (() => { runtime: number; front: number }) | undefined, run: () => Promise<unknown>): Promise<Transfer> {
  const before = cpu?.();
  const started = performance.now();
  await run();
  const seconds = (performance.now() - started) / 1000;
  const after = cpu?.();
  const t: Transfer = { bytes, seconds, mb_per_s: bytes / 1e6 / seconds };
  if (before && after) {
    t.runtime_cpu_s = after.runtime - before.runtime;
    t.front_cpu_s = after.front - before.front;
  }
  return t;
}

async function readAll(url: string, expected: number, range?: string): Promise<void> {
  const res = await request(url, range ? { headers: { range } } : {});
  let received = 0;
  for await (const chunk of res.body) received += (chunk as Buffer).length;
  if (res.statusCode !== (range ? 206 : 200) || received !== expected) throw new Error(`GET ${url}: ${res.statusCode}, ${received} of ${expected} bytes`);
}

/** POST, then one PUT ?digest= with the whole blob (as docker does for a small layer, and curl). */
async function pushWhole(base: string, bytes: Buffer, digest: string): Promise<void> {
  const started = await request(`${base}/v2/bench/edge/blobs/uploads/`, { method: "POST" });
  await started.body.dump();
  const url = new URL(String(started.headers.location), base);
  url.searchParams.set("digest", digest);
  const res = await request(url, { method: "PUT", body: bytes, headers: { "content-type": "application/octet-stream", "content-length": String(bytes.length) } });
  const text = await res.body.text();
  if (res.statusCode !== 201) throw new Error(`PUT ${url}: ${res.statusCode} ${text.slice(0, 300)}`);
}

async function pushInChunks(base: string, bytes: Buffer, chunks: number): Promise<void> {
  const upload = await pushChunked.start(base, "bench/edge");
  const step = Math.ceil(bytes.length / chunks);
  for (let at = 0; at < bytes.length; at += step) await upload.append(bytes.subarray(at, Math.min(bytes.length, at + step)));
  await upload.finish(sha256(bytes));
}

async function pushManifest(base: string, layer: string, size: number): Promise<void> {
  const config = Buffer.from("{}");
  await pushWhole(base, config, sha256(config));
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha256(config), size: config.length },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: layer, size }],
  });
  const res = await request(`${base}/v2/bench/edge/manifests/latest`, { method: "PUT", body: manifest, headers: { "content-type": "application/vnd.oci.image.manifest.v1+json" } });
  const text = await res.body.text();
  if (res.statusCode !== 201) throw new Error(`manifest PUT ${base}: ${res.statusCode} ${text.slice(0, 300)}`);
}

async function small(url: string, method: "GET" | "HEAD"): Promise<void> {
  const res = await request(url, { method, headers: { accept: "application/vnd.oci.image.manifest.v1+json" } });
  await res.body.dump();
  if (res.statusCode !== 200) throw new Error(`${method} ${url}: ${res.statusCode}`);
}

/** Sequential requests (one client, keep-alive): per-request latency percentiles. */
async function latency(n: number, run: () => Promise<void>): Promise<Latency> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const started = performance.now();
    await run();
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))]!;
  return { p50_ms: at(0.5), p90_ms: at(0.9), p99_ms: at(0.99) };
}

function medianLatency(ls: Latency[]): Latency & { rounds: Latency[] } {
  return { p50_ms: medianOf(ls.map((l) => l.p50_ms)), p90_ms: medianOf(ls.map((l) => l.p90_ms)), p99_ms: medianOf(ls.map((l) => l.p99_ms)), rounds: ls };
}

function medianOf(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

function progress(message: string): void {
  process.stderr.write(`[bench edge] ${message}\n`);
}
