import { spawn, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { link, mkdir, mkdtemp, open, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { request } from "undici";
import { parseSize } from "../src/agent-node/config.js";
import { bundleAgent } from "../src/devcluster/build-agent.js";
import { AGENT_ENV, AGENT_NODE_FLAGS } from "../src/agent-node/node-flags.js";
import { BenchProcess, freePorts, startBenchEdge } from "./lib/processes.js";
import { pushChunked, pushOneLayerImage } from "./lib/push.js";
import { ProcessSampler } from "./lib/sampler.js";
import { aria2Leech, makeTorrent, scrapeComplete, startAria2Seeder, startTracker, untilTrue } from "./lib/bittorrent.js";
import { renderSvg } from "./lib/plots.js";

export interface AgentBenchOptions {
  size: number;
  seeders: number;
  rounds: number;
  out: string;
  /** Skip the aria2 baseline (it needs Debian's aria2 and opentracker). */
  shoalOnly: boolean;
}

/** One pull by one client: what it cost the puller and the seeders. */
export interface PullFigures {
  seconds: number;
  mb_per_s: number;
  /** The puller's CPU seconds (user + kernel) per GiB received. */
  cpu_s_per_gib_received: number;
  /** Of which in the kernel. */
  system_cpu_s_per_gib_received: number;
  /** The seeders' CPU seconds, all of them, per GiB they served. */
  cpu_s_per_gib_served: number;
  /** The puller's peak resident memory (VmHWM). */
  peak_rss_bytes: number;
  /** Shoal only: bytes the puller took from the edge (web seed) instead of peers. */
  origin_bytes?: number;
}

export interface AgentReport {
  blob_bytes: number;
  seeders: number;
  rounds: number;
  shoal: PullFigures[];
  aria2: PullFigures[] | null;
  /** Medians over the rounds. */
  median: { shoal: PullFigures; aria2: PullFigures | null };
  /** Shoal's median CPU per GiB received over aria2's. */
  cpu_ratio: number | null;
}

const NAME = "bench/agent";
const TAG = "v1";
const WARMUP_NAME = "bench/agent-warmup";
const PUSH_CHUNK_BYTES = 64 * 1024 * 1024;
const GIB = 1024 ** 3;

/**
 * `npm run bench -- agent`: one agent pulls an S-byte blob from K seeder agents with no bandwidth
 * limit, then, in the same run on the same machine, one aria2 pulls the same bytes from K aria2
 * seeders (BitTorrent, 1 MiB pieces, opentracker). Reported per client: MB/s, the puller's CPU per
 * GiB received, the seeders' CPU per GiB served, and the puller's peak RSS; rounds alternate.
 */
export async function benchAgent(options: AgentBenchOptions): Promise<void> {
  await mkdir(options.out, { recursive: true });
  const home = await mkdtemp(path.join(os.tmpdir(), "shoal-bench-agent-"));
  const cleanups: (() => Promise<unknown>)[] = [];
  try {
    progress(`one agent pulling ${mib(options.size)} from ${options.seeders} seeders, no bandwidth limit, ${options.rounds} round(s)`);
    const blobFile = path.join(home, "blob");
    const digest = await writeRandomFile(blobFile, options.size);
    const [edgePort] = (await freePorts(1)) as [number];
    const edge = await startBenchEdge(edgePort, path.join(home, "edge"));
    cleanups.push(() => edge.stop());
    const edgeUrl = `http://127.0.0.1:${edgePort}`;
    const layer = await pushLayerImage(edgeUrl, blobFile, options.size, digest);
    const warmup = await pushOneLayerImage(edgeUrl, WARMUP_NAME, TAG, randomBytes(1024 * 1024));
    const bundle = await bundleAgent();
    const metainfo = await (await request(`${edgeUrl}/shoal/v1/${NAME}/metainfo/${digest}`)).body.text();

    const bt = options.shoalOnly ? undefined : await startBitTorrent(home, blobFile, options.seeders);
    if (bt) cleanups.push(() => bt.stop());
    const shoal: PullFigures[] = [];
    const aria2: PullFigures[] = [];
    for (let round = 0; round < options.rounds; round++) {
      const figures = await shoalRound(home, round, options, { edgeUrl, bundle, blobFile, digest, metainfo, layer, warmup });
      shoal.push(figures);
      progress(`round ${round + 1} shoal: ${line(figures)}`);
      if (bt) {
        const theirs = await bt.round(round, options.size);
        aria2.push(theirs);
        progress(`round ${round + 1} aria2: ${line(theirs)}`);
      }
    }
    const median = { shoal: medianOf(shoal), aria2: bt ? medianOf(aria2) : null };
    const report: AgentReport = {
      blob_bytes: options.size,
      seeders: options.seeders,
      rounds: options.rounds,
      shoal,
      aria2: bt ? aria2 : null,
      median,
      cpu_ratio: median.aria2 ? median.shoal.cpu_s_per_gib_received / median.aria2.cpu_s_per_gib_received : null,
    };
    const file = path.join(options.out, "agent.json");
    await writeFile(file, `${JSON.stringify(report, null, 2)}\n`);
    await writeFile(path.join(options.out, "agent.svg"), await plot(report));
    console.log(`\nagent benchmark: one puller, ${mib(options.size)}, ${options.seeders} seeders, no limit (median of ${options.rounds})`);
    console.log(`shoal  ${line(median.shoal)}`);
    if (median.aria2) console.log(`aria2  ${line(median.aria2)}\nshoal/aria2 CPU per GiB received: ${report.cpu_ratio!.toFixed(2)}×`);
    console.log(`written to ${file} and agent.svg`);
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
    await rm(home, { recursive: true, force: true });
  }
}

interface ShoalSetup {
  edgeUrl: string;
  bundle: string;
  blobFile: string;
  digest: string;
  metainfo: string;
  layer: { configDigest: string; layerDigest: string };
  warmup: { configDigest: string; layerDigest: string };
}

/**
 * K seeder agents whose stores already hold the blob (a hard link to the same file, with the
 * edge's metainfo beside it), seeding once a request touched it; one fresh agent pulls the image.
 */
async function shoalRound(home: string, round: number, options: AgentBenchOptions, setup: ShoalSetup): Promise<PullFigures> {
  const dir = path.join(home, `shoal-${round}`);
  const hex = setup.digest.slice("sha256:".length);
  const agents: { proc: BenchProcess; registry: number; admin: number }[] = [];
  try {
    const ports = await freePorts(3 * (options.seeders + 1));
    for (let i = 0; i <= options.seeders; i++) {
      const store = path.join(dir, `agent-${i}`);
      if (i > 0) {
        await mkdir(path.join(store, "blobs", "sha256"), { recursive: true });
        await link(setup.blobFile, path.join(store, "blobs", "sha256", hex));
        await writeFile(path.join(store, "blobs", "sha256", `${hex}.metainfo.json`), setup.metainfo);
      }
      const [registry, peer, admin] = ports.slice(3 * i, 3 * i + 3) as [number, number, number];
      const proc = await BenchProcess.start(
        process.execPath,
        [
          ...agentNodeFlags(),
          setup.bundle,
          "agent",
          `--edge=${setup.edgeUrl}`,
          `--store-dir=${store}`,
          `--agent-registry-port=${registry}`,
          `--peer-port=${peer}`,
          `--agent-server-port=${admin}`,
          `--log-level=${process.env.SHOAL_BENCH_AGENT_LOG_LEVEL ?? "warn"}`,
        ],
        `http://127.0.0.1:${admin}/health`,
        AGENT_ENV,
      );
      agents.push({ proc, registry, admin });
    }
    const [puller, ...seeders] = agents as [(typeof agents)[0], ...typeof agents];
    // A blob served once is seeded (announced); a one-byte range is enough.
    for (const s of seeders) await curl([`http://127.0.0.1:${s.registry}/v2/${NAME}/blobs/${setup.digest}`], ["-r", "0-0"]);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    // A warm process, as in a fleet: the puller has talked to the edge before.
    await curl(manifestAndBlobs(puller.registry, WARMUP_NAME, [setup.warmup.configDigest, setup.warmup.layerDigest]));
    const originBefore = await originBytes(puller.admin);
    progress(`pulling: puller pid ${puller.proc.child.pid}, seeder pids ${seeders.map((s) => s.proc.child.pid).join(" ")}`);
    const pullerCpu = new ProcessSampler(() => [puller.proc.child.pid!]);
    const seederCpu = new ProcessSampler(() => seeders.map((s) => s.proc.child.pid!));
    const started = performance.now();
    await curl(manifestAndBlobs(puller.registry, NAME, [setup.layer.configDigest, setup.layer.layerDigest]));
    const seconds = (performance.now() - started) / 1000;
    const mine = pullerCpu.stop();
    const theirs = seederCpu.stop();
    return {
      ...figures(options.size, seconds, mine.cpuSeconds, mine.systemCpuSeconds, theirs.cpuSeconds, peakRssOf(puller.proc.child.pid!)),
      origin_bytes: (await originBytes(puller.admin)) - originBefore,
    };
  } finally {
    await Promise.all(agents.map((a) => a.proc.stop()));
    await rm(dir, { recursive: true, force: true });
  }
}

async function originBytes(adminPort: number): Promise<number> {
  const metrics = await (await request(`http://127.0.0.1:${adminPort}/metrics`)).body.text();
  const origin = /shoal_agent_bytes_downloaded_total\{source="origin"\} (\d+)/.exec(metrics);
  return origin ? Number(origin[1]) : 0;
}

/** SHOAL_BENCH_CPU_PROF=DIR: V8 CPU profiles of the agents; SHOAL_BENCH_AGENT_NODE_FLAGS: more node flags. */
function agentNodeFlags(): string[] {
  // The agent's own V8 flags (as a host runs it), then any the run adds (a later one wins).
  return [
    ...AGENT_NODE_FLAGS,
    ...(process.env.SHOAL_BENCH_CPU_PROF ? ["--cpu-prof", `--cpu-prof-dir=${process.env.SHOAL_BENCH_CPU_PROF}`] : []),
    ...(process.env.SHOAL_BENCH_AGENT_NODE_FLAGS ?? "").split(" ").filter(Boolean),
  ];
}

/** aria2 seeders of the same bytes (hard links), opentracker, and a leecher per round. */
async function startBitTorrent(home: string, blobFile: string, seeders: number) {
  const dir = path.join(home, "bt");
  await mkdir(dir, { recursive: true });
  const [trackerPort, ...ports] = (await freePorts(2 + seeders)) as [number, ...number[]];
  const { torrent, infoHash } = await makeTorrent(blobFile, "blob", 1024 * 1024, `http://127.0.0.1:${trackerPort}/announce`);
  const torrentFile = path.join(dir, "blob.torrent");
  await writeFile(torrentFile, torrent);
  const processes: ChildProcess[] = [await startTracker(trackerPort, dir, infoHash)];
  const seederPids: number[] = [];
  for (let i = 0; i < seeders; i++) {
    const seedDir = path.join(dir, `seeder-${i}`);
    await mkdir(seedDir);
    await link(blobFile, path.join(seedDir, "blob"));
    const seeder = startAria2Seeder(torrentFile, seedDir, ports[i]!);
    processes.push(seeder);
    seederPids.push(seeder.pid!);
  }
  await untilTrue(async () => (await scrapeComplete(trackerPort, infoHash)) >= seeders, 60_000, "the aria2 seeders did not announce");
  return {
    async round(round: number, size: number): Promise<PullFigures> {
      const leechDir = path.join(dir, `leech-${round}`);
      await mkdir(leechDir);
      const seederCpu = new ProcessSampler(() => seederPids);
      try {
        const result = await aria2Leech(torrentFile, leechDir, ports[seeders]!, 600_000);
        const theirs = seederCpu.stop();
        const received = await sha256File(path.join(leechDir, "blob"));
        const expected = await sha256File(blobFile);
        if (received !== expected) throw new Error("aria2 received bytes that differ from the blob");
        const cpu = result.userSeconds + result.systemSeconds;
        return figures(size, result.wallSeconds, cpu, result.systemSeconds, theirs.cpuSeconds, result.peakRssBytes);
      } finally {
        await rm(leechDir, { recursive: true, force: true });
      }
    },
    async stop(): Promise<void> {
      for (const p of processes) p.kill("SIGKILL");
    },
  };
}

function figures(size: number, seconds: number, cpu: number, systemCpu: number, servedCpu: number, peakRss: number): PullFigures {
  const gib = size / GIB;
  return {
    seconds,
    mb_per_s: size / 1e6 / seconds,
    cpu_s_per_gib_received: cpu / gib,
    system_cpu_s_per_gib_received: systemCpu / gib,
    cpu_s_per_gib_served: servedCpu / gib,
    peak_rss_bytes: peakRss,
  };
}

/** Each round's CPU per GiB received (and served, by the seeders), and the puller's peak RSS, by client. */
function plot(report: AgentReport): Promise<string> {
  const rows = (["shoal", "aria2"] as const).flatMap((client) =>
    (report[client] ?? []).flatMap((r, i) => [
      { client, round: i + 1, figure: "CPU s per GiB received", value: r.cpu_s_per_gib_received },
      { client, round: i + 1, figure: "seeders' CPU s per GiB served", value: r.cpu_s_per_gib_served },
      { client, round: i + 1, figure: "peak RSS (MiB / 100)", value: Math.round(r.peak_rss_bytes / 2 ** 20) / 100 },
    ]),
  );
  return renderSvg({
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: `one puller, ${mib(report.blob_bytes)} from ${report.seeders} seeders, no limit: each round`,
    width: 180,
    height: 240,
    data: { values: rows },
    mark: { type: "point", filled: true, size: 80 },
    encoding: {
      column: { field: "figure", type: "nominal", title: null },
      x: { field: "client", type: "nominal", title: null },
      y: { field: "value", type: "quantitative", title: null },
      color: { field: "client", type: "nominal" },
    },
  });
}

function medianOf(rounds: PullFigures[]): PullFigures {
  const pick = (key: keyof PullFigures) => {
    const sorted = rounds.map((r) => r[key] ?? 0).sort((a, b) => a - b);
    return sorted[Math.floor((sorted.length - 1) / 2)]!;
  };
  return {
    seconds: pick("seconds"),
    mb_per_s: pick("mb_per_s"),
    cpu_s_per_gib_received: pick("cpu_s_per_gib_received"),
    system_cpu_s_per_gib_received: pick("system_cpu_s_per_gib_received"),
    cpu_s_per_gib_served: pick("cpu_s_per_gib_served"),
    peak_rss_bytes: pick("peak_rss_bytes"),
    ...(rounds[0]?.origin_bytes !== undefined ? { origin_bytes: pick("origin_bytes") } : {}),
  };
}

function line(f: PullFigures): string {
  return (
    `${f.mb_per_s.toFixed(0).padStart(5)} MB/s  CPU ${f.cpu_s_per_gib_received.toFixed(2)} s/GiB received (kernel ${f.system_cpu_s_per_gib_received.toFixed(2)})  ` +
    `seeders ${f.cpu_s_per_gib_served.toFixed(2)} s/GiB served  peak RSS ${mib(f.peak_rss_bytes)}` +
    (f.origin_bytes ? `  (${mib(f.origin_bytes)} from the edge)` : "")
  );
}

/** Writes `size` random bytes to `file` in 64 MiB chunks; returns their digest. */
async function writeRandomFile(file: string, size: number): Promise<string> {
  const hash = createHash("sha256");
  const handle = await open(file, "w");
  try {
    for (let at = 0; at < size; at += PUSH_CHUNK_BYTES) {
      const chunk = randomBytes(Math.min(PUSH_CHUNK_BYTES, size - at));
      hash.update(chunk);
      await handle.write(chunk, 0, chunk.length, at);
    }
  } finally {
    await handle.close();
  }
  return `sha256:${hash.digest("hex")}`;
}

/** An image whose one layer is the file, pushed in chunks (the file is never whole in memory). */
async function pushLayerImage(base: string, file: string, size: number, digest: string): Promise<{ configDigest: string; layerDigest: string }> {
  const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] } }));
  const configDigest = `sha256:${createHash("sha256").update(config).digest("hex")}`;
  const configUpload = await pushChunked.start(base, NAME);
  await configUpload.append(config);
  await configUpload.finish(configDigest);
  const upload = await pushChunked.start(base, NAME);
  const handle = await open(file, "r");
  try {
    for (let at = 0; at < size; at += PUSH_CHUNK_BYTES) {
      const chunk = Buffer.allocUnsafe(Math.min(PUSH_CHUNK_BYTES, size - at));
      await handle.read(chunk, 0, chunk.length, at);
      await upload.append(chunk);
    }
  } finally {
    await handle.close();
  }
  await upload.finish(digest);
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: configDigest, size: config.length },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest, size }],
  });
  const res = await request(`${base}/v2/${NAME}/manifests/${TAG}`, { method: "PUT", body: manifest, headers: { "content-type": "application/vnd.oci.image.manifest.v1+json" } });
  const text = await res.body.text();
  if (res.statusCode !== 201) throw new Error(`manifest PUT: ${res.statusCode} ${text.slice(0, 300)}`);
  return { configDigest, layerDigest: digest };
}

function manifestAndBlobs(port: number, name: string, blobs: string[]): string[] {
  return [`http://127.0.0.1:${port}/v2/${name}/manifests/${TAG}`, ...blobs.map((d) => `http://127.0.0.1:${port}/v2/${name}/blobs/${d}`)];
}

/** curl fetches `urls` in turn to /dev/null (a client that costs the agent's event loop nothing). */
function curl(urls: string[], extra: string[] = []): Promise<void> {
  const args = ["-sS", "--fail", ...extra, "-H", "Accept: application/vnd.oci.image.manifest.v1+json"];
  for (const url of urls) args.push("-o", "/dev/null", url);
  return new Promise((resolve, reject) => {
    const child = spawn("curl", args, { stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`curl ${urls[0]} failed (${code}): ${err.slice(-300)}`))));
  });
}

async function sha256File(file: string): Promise<string> {
  const hash = createHash("sha256");
  const handle = await open(file, "r");
  try {
    const buffer = Buffer.allocUnsafe(4 << 20);
    for (let at = 0; ; ) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, at);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
      at += bytesRead;
    }
  } finally {
    await handle.close();
  }
  return hash.digest("hex");
}

/** The peak resident memory of a live process (VmHWM, Linux). */
function peakRssOf(pid: number): number {
  try {
    const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(bytes % 2 ** 20 === 0 ? 0 : 1)} MiB`;
}

function progress(message: string): void {
  process.stderr.write(`[agent] ${message}\n`);
}

export function parseAgentArgs(values: Record<string, string | boolean | undefined>): AgentBenchOptions {
  return {
    size: parseSize(String(values.size ?? "1GiB")),
    seeders: Number(values.seeders ?? 3),
    rounds: Number(values.rounds ?? 3),
    out: path.resolve(String(values.out ?? "bench-out")),
    shoalOnly: values["shoal-only"] === true,
  };
}
