import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { request } from "undici";
import { parseSize } from "../src/agent-node/config.js";
import { startDistribution } from "../test/helpers/distribution.js";
import { processTree } from "../test/helpers/rss.js";
import { BenchProcess, freePorts, startBenchEdge } from "./lib/processes.js";
import { pushChunked } from "./lib/push.js";
import { renderSvg } from "./lib/plots.js";
import { startServerlessRegistry } from "./lib/serverless-registry.js";
import { startFront, type Front } from "../src/devcluster/front.js";

const execFileAsync = promisify(execFile);

export interface EdgeBenchOptions {
  size: number;
  rounds: number;
  /** Small requests per round, for the latency figures. */
  requests: number;
  out: string;
  /** A checkout of cloudflare/serverless-registry (dependencies installed) to measure beside the others. */
  serverlessRegistry?: string;
}

export function parseEdgeArgs(values: Record<string, string | boolean | undefined>): EdgeBenchOptions {
  return {
    size: parseSize(String(values.size ?? "64MiB")),
    rounds: Number(values.rounds ?? 5),
    requests: Number(values.requests ?? 200),
    out: String(values.out ?? "bench-out"),
    ...(values["serverless-registry"] ? { serverlessRegistry: path.resolve(String(values["serverless-registry"])) } : {}),
  };
}

/**
 * Where a registry is reached: the edge through its Node front, the edge's runtime directly,
 * distribution, or (with --serverless-registry) cloudflare/serverless-registry on the same miniflare.
 */
type Target = "shoal" | "shoal_runtime" | "distribution" | "serverless_registry" | "serverless_registry_front";
/** The registries whose pushes and small requests are measured (the runtime's port only reads). */
/** Targets only read from: the runtime's port (pushes go through the front), serverless-registry behind Shoal's front. */
type Reader = "shoal_runtime" | "serverless_registry_front";
type Pusher = Exclude<Target, Reader>;
const readOnly = (target: Target): target is Reader => target === "shoal_runtime" || target === "serverless_registry_front";
const TARGETS: readonly Target[] = ["shoal", "shoal_runtime", "distribution", "serverless_registry", "serverless_registry_front"];

/** A registry's base URL and the headers every request to it carries (serverless-registry's credentials). */
interface Registry {
  base: string;
  headers: Record<string, string>;
  /** False when it answers a Range request with the whole blob (serverless-registry does): no Range GET figures. */
  ranges?: boolean;
}
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
  let serverlessFront: Front | undefined;
  try {
    const [edgePort, distributionPort, serverlessPort, serverlessFrontPort] = (await freePorts(4)) as [number, number, number, number];
    progress(`starting the edge and distribution${options.serverlessRegistry ? " and serverless-registry" : ""} in ${home}`);
    const edge = await startBenchEdge(edgePort, home);
    procs.push(edge);
    const runtime = /"runtime":"([^"]+)"/.exec(edge.output)?.[1]?.replace(/\/$/, "");
    if (!runtime) throw new Error(`the edge did not log its runtime URL: ${edge.output.slice(-500)}`);
    const distribution = await startDistribution(path.join(home, "distribution"), distributionPort);
    procs.push(distribution);
    const registries: Partial<Record<Target, Registry>> = {
      shoal: { base: `http://127.0.0.1:${edgePort}`, headers: {} },
      shoal_runtime: { base: runtime, headers: {} },
      distribution: { base: `http://127.0.0.1:${distributionPort}`, headers: {} },
    };
    /** Whose processes' CPU a target's figures count (the edge's runtime and front; serverless-registry's runtime). */
    const cpuRoots: Partial<Record<Target, number>> = { shoal: edge.child.pid!, shoal_runtime: edge.child.pid! };
    if (options.serverlessRegistry) {
      const serverless = await startServerlessRegistry(options.serverlessRegistry, serverlessPort, path.join(home, "serverless-registry"));
      procs.push(serverless.proc);
      registries.serverless_registry = { base: serverless.base, headers: { authorization: serverless.authorization }, ranges: false };
      cpuRoots.serverless_registry = serverless.proc.child.pid!;
      // The devcluster's front before it too (in this process): GETs through the same relay, like for like.
      serverlessFront = await startFront({ host: "127.0.0.1", port: serverlessFrontPort, upstream: () => ({ host: "127.0.0.1", port: serverlessPort }), log: () => undefined });
      registries.serverless_registry_front = { base: serverlessFront.url, headers: { authorization: serverless.authorization }, ranges: false };
    }
    const targets = TARGETS.filter((target) => registries[target]);
    const pushers = targets.filter((target): target is Pusher => !readOnly(target));

    progress(`pushing a ${options.size}-byte blob and a manifest to ${pushers.join(", ")}`);
    const blob = randomBytes(options.size);
    const digest = sha256(blob);
    for (const target of pushers) {
      await pushWhole(registries[target]!, blob, digest);
      await pushManifest(registries[target]!, digest, options.size);
    }

    const transfers: Partial<Record<Target, Partial<Record<Operation, Transfer[]>>>> = Object.fromEntries(targets.map((t) => [t, {}]));
    const latencies: Partial<Record<Pusher, { head_blob: Latency[]; get_manifest_by_tag: Latency[] }>> = Object.fromEntries(pushers.map((t) => [t, { head_blob: [], get_manifest_by_tag: [] }]));
    const record = (target: Target, op: Operation, t: Transfer) => ((transfers[target] ??= {})[op] ??= []).push(t);
    const half = Math.floor(options.size / 2);
    const blobPath = `/v2/bench/edge/blobs/${digest}`;
    // One untimed pass first: every server (and the front's JIT) has run each path once, as a running registry has.
    progress("warm-up: one untimed pass of every operation");
    for (const target of targets) {
      const registry = registries[target]!;
      await readAll(registry, blobPath, options.size);
      if (registry.ranges !== false) await readAll(registry, blobPath, options.size - half, `bytes=${half}-`);
      if (readOnly(target)) continue;
      const warm = randomBytes(options.size);
      await pushWhole(registry, warm, sha256(warm));
      await pushInChunks(registry, randomBytes(options.size), 4);
    }
    for (let round = 1; round <= options.rounds; round++) {
      for (const target of targets) {
        const registry = registries[target]!;
        const root = cpuRoots[target];
        const cpu = root === undefined ? undefined : () => edgeCpu(root);
        record(target, "get", await timed(options.size, cpu, () => readAll(registry, blobPath, options.size)));
        if (registry.ranges !== false) record(target, "range_get", await timed(options.size - half, cpu, () => readAll(registry, blobPath, options.size - half, `bytes=${half}-`)));
        if (readOnly(target)) continue; // pushes go through the front only (the runtime's port stalls TLS-probing clients)
        // Fresh bytes for each push: a blob the registry holds is not uploaded again.
        const mono = randomBytes(options.size);
        record(target, "monolithic_put", await timed(options.size, cpu, () => pushWhole(registry, mono, sha256(mono))));
        const chunked = randomBytes(options.size);
        record(target, "chunked_put", await timed(options.size, cpu, () => pushInChunks(registry, chunked, 4)));
        latencies[target]!.head_blob.push(await latency(options.requests, () => small(registry, blobPath, "HEAD")));
        latencies[target]!.get_manifest_by_tag.push(await latency(options.requests, () => small(registry, "/v2/bench/edge/manifests/latest", "GET")));
      }
      for (const target of targets) {
        const line = OPERATIONS.map((op) => transfers[target]?.[op]?.at(-1)).map((t, i) => (t ? `${OPERATIONS[i]} ${t.mb_per_s.toFixed(0)} MB/s` : "")).filter(Boolean);
        progress(`round ${round}: ${target.padEnd(19)} ${line.join(", ")}`);
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
        targets.map((target) => {
          const lat = readOnly(target) ? undefined : latencies[target];
          return [
            target,
            {
              ...Object.fromEntries(OPERATIONS.flatMap((op) => (transfers[target]?.[op] ? [[op, summary(transfers[target][op])]] : []))),
              ...(lat ? { latency: { head_blob: medianLatency(lat.head_blob), get_manifest_by_tag: medianLatency(lat.get_manifest_by_tag) } } : {}),
            },
          ];
        }),
      ),
    } as unknown as Record<string, unknown> & Record<"shoal" | "distribution", Record<string, { median_mb_per_s: number }>> & { serverless_registry?: Record<string, { median_mb_per_s: number }> };
    report.ratio_to_distribution = Object.fromEntries(OPERATIONS.map((op) => [op, report.shoal[op]!.median_mb_per_s / report.distribution[op]!.median_mb_per_s]));
    const serverless = report.serverless_registry;
    if (serverless) report.ratio_to_serverless_registry = Object.fromEntries(OPERATIONS.flatMap((op) => (serverless[op] ? [[op, report.shoal[op]!.median_mb_per_s / serverless[op].median_mb_per_s]] : [])));
    // GETs like for like: Shoal's runtime port against serverless-registry's, and both behind the same front.
    const byTarget = report as unknown as Partial<Record<Target, Partial<Record<Operation, { median_mb_per_s: number }>>>>;
    const runtimeGet = byTarget.shoal_runtime?.get;
    const frontedGet = byTarget.serverless_registry_front?.get;
    if (serverless?.get && runtimeGet && frontedGet) {
      report.get_like_for_like = { runtime_ports: runtimeGet.median_mb_per_s / serverless.get.median_mb_per_s, through_the_front: report.shoal.get!.median_mb_per_s / frontedGet.median_mb_per_s };
    }
    await mkdir(options.out, { recursive: true });
    const file = path.join(options.out, "edge.json");
    await writeFile(file, `${JSON.stringify(report, null, 2)}\n`);
    await writeFile(path.join(options.out, "edge.svg"), await edgePlot(report as unknown as EdgeReportForPlot));
    const s = report.shoal as unknown as Record<Operation, { median_mb_per_s: number; runtime_cpu_s_per_gib?: number }>;
    const d = report.distribution as unknown as Record<Operation, { median_mb_per_s: number }>;
    console.log(`\nedge (median of ${options.rounds} rounds, ${(options.size / 2 ** 20).toFixed(0)} MiB):`);
    for (const op of OPERATIONS) {
      const beside = serverless?.[op] ? `  serverless-registry ${serverless[op]!.median_mb_per_s.toFixed(0).padStart(5)} MB/s (shoal ${(s[op].median_mb_per_s / serverless[op]!.median_mb_per_s).toFixed(2)}x)` : "";
      console.log(`  ${op.padEnd(15)} shoal ${s[op].median_mb_per_s.toFixed(0).padStart(5)} MB/s  distribution ${d[op].median_mb_per_s.toFixed(0).padStart(5)} MB/s${beside}  runtime CPU ${s[op].runtime_cpu_s_per_gib?.toFixed(2)} s/GiB`);
    }
    const like = report.get_like_for_like as { runtime_ports: number; through_the_front: number } | undefined;
    if (like) console.log(`  get, like for like: runtime ports ${like.runtime_ports.toFixed(2)}x serverless-registry, both through the front ${like.through_the_front.toFixed(2)}x`);
    console.log(`written to ${file} and edge.svg`);
  } catch (error) {
    // What the servers said last (the edge's front and Worker log there) is what explains a failed request.
    for (const proc of procs) progress(`last output of ${proc.child.spawnfile}:\n${proc.output.slice(-3000)}`);
    throw error;
  } finally {
    await serverlessFront?.close(0);
    for (const proc of procs.reverse()) await proc.stop();
    await rm(home, { recursive: true, force: true });
  }
}

type EdgeReportForPlot = Partial<Record<Target, Partial<Record<Operation, { median_mb_per_s: number; min_mb_per_s: number; max_mb_per_s: number }>>>> & { blob_bytes: number; rounds: number };

/** Throughput of each operation, per registry: the median with the rounds' spread. */
function edgePlot(report: EdgeReportForPlot): Promise<string> {
  const rows = TARGETS.flatMap((target) =>
    OPERATIONS.flatMap((op) => {
      const m = report[target]?.[op];
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

/** Times `run`; a run that returns a number gives its own seconds (curl's, without its start-up). */
async function timed(bytes: number, cpu: (() => { runtime: number; front: number }) | undefined, run: () => Promise<unknown>): Promise<Transfer> {
  const before = cpu?.();
  const started = performance.now();
  const own = await run();
  const seconds = typeof own === "number" ? own : (performance.now() - started) / 1000;
  const after = cpu?.();
  const t: Transfer = { bytes, seconds, mb_per_s: bytes / 1e6 / seconds };
  if (before && after) {
    t.runtime_cpu_s = after.runtime - before.runtime;
    t.front_cpu_s = after.front - before.front;
  }
  return t;
}

/**
 * One GET by curl, which it times (seconds from its start of the request to the last byte). The
 * client must not be what is measured: undici's body iterated in this process topped out at
 * 0.6–0.9 GB/s, while curl reads 2.0–2.5 GB/s from these registries (2026-12-04).
 */
async function readAll(registry: Registry, path: string, expected: number, range?: string): Promise<number> {
  const args = ["-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{time_total}"];
  for (const [name, value] of Object.entries({ ...registry.headers, ...(range ? { range } : {}) })) args.push("-H", `${name}: ${value}`);
  const { stdout } = await execFileAsync("curl", [...args, `${registry.base}${path}`]);
  const [status, received, seconds] = stdout.trim().split(" ").map(Number);
  if (status !== (range ? 206 : 200) || received !== expected) throw new Error(`GET ${registry.base}${path}: ${status}, ${received} of ${expected} bytes`);
  return seconds!;
}

/** POST, then one PUT ?digest= with the whole blob (as docker does for a small layer, and curl). */
async function pushWhole(registry: Registry, bytes: Buffer, digest: string): Promise<void> {
  const started = await request(`${registry.base}/v2/bench/edge/blobs/uploads/`, { method: "POST", headers: registry.headers });
  await started.body.dump();
  const url = new URL(String(started.headers.location), registry.base);
  url.searchParams.set("digest", digest);
  const res = await request(url, { method: "PUT", body: bytes, headers: { ...registry.headers, "content-type": "application/octet-stream", "content-length": String(bytes.length) } });
  const text = await res.body.text();
  if (res.statusCode !== 201) throw new Error(`PUT ${url}: ${res.statusCode} ${text.slice(0, 300)}`);
}

async function pushInChunks(registry: Registry, bytes: Buffer, chunks: number): Promise<void> {
  const upload = await pushChunked.start(registry.base, "bench/edge", registry.headers);
  const step = Math.ceil(bytes.length / chunks);
  for (let at = 0; at < bytes.length; at += step) await upload.append(bytes.subarray(at, Math.min(bytes.length, at + step)));
  await upload.finish(sha256(bytes));
}

async function pushManifest(registry: Registry, layer: string, size: number): Promise<void> {
  const config = Buffer.from("{}");
  await pushWhole(registry, config, sha256(config));
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha256(config), size: config.length },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: layer, size }],
  });
  const res = await request(`${registry.base}/v2/bench/edge/manifests/latest`, { method: "PUT", body: manifest, headers: { ...registry.headers, "content-type": "application/vnd.oci.image.manifest.v1+json" } });
  const text = await res.body.text();
  if (res.statusCode !== 201) throw new Error(`manifest PUT ${registry.base}: ${res.statusCode} ${text.slice(0, 300)}`);
}

async function small(registry: Registry, path: string, method: "GET" | "HEAD"): Promise<void> {
  const res = await request(`${registry.base}${path}`, { method, headers: { ...registry.headers, accept: "application/vnd.oci.image.manifest.v1+json" } });
  await res.body.dump();
  if (res.statusCode !== 200) throw new Error(`${method} ${registry.base}${path}: ${res.statusCode}`);
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
