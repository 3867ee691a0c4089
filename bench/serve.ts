import { createHash, randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { request } from "undici";
import { parseSize } from "../src/agent-node/config.js";
import { BenchProcess, freePorts, startBenchEdge } from "./lib/processes.js";
import { pushChunked } from "./lib/push.js";
import { bundleAgent } from "../src/devcluster/build-agent.js";

export interface ServeOptions {
  size: number;
  readers: number;
  rounds: number;
  out: string;
}

interface Measurement {
  mb_per_s: number;
  seconds: number;
  peak_rss_bytes: number;
}

/**
 * `npm run bench -- serve`: one blob served from a warm agent store to N concurrent readers, side
 * by side with Debian's docker-registry (distribution 2.8) serving the same blob to the same
 * client, in the same run. Rounds alternate between the two so that neither gets a warmer cache.
 */
export async function benchServe(options: ServeOptions): Promise<void> {
  const home = await mkdtemp(path.join(os.tmpdir(), "shoal-bench-serve-"));
  const procs: BenchProcess[] = [];
  try {
    const [edgePort, registryPort, peerPort, adminPort, distributionPort] = (await freePorts(5)) as [number, number, number, number, number];
    const edgeUrl = `http://127.0.0.1:${edgePort}`;
    progress(`starting the edge, an agent and distribution in ${home}`);
    const edge = await startBenchEdge(edgePort, home);
    procs.push(edge);
    // The agent as it runs on a host: the bundle (`npm run build:agent`) in one node process, so
    // its RSS is its own and no TypeScript loader is counted.
    const bundle = await bundleAgent(); // dist/shoal.mjs, beside node_modules

    const agent = await BenchProcess.start(
      process.execPath,
      [
        bundle,
        "agent",
        `--edge=${edgeUrl}`,
        `--store-dir=${path.join(home, "agent")}`,
        `--agent-registry-port=${registryPort}`,
        `--peer-port=${peerPort}`,
        `--agent-server-port=${adminPort}`,
        "--log-level=warn",
      ],
      `http://127.0.0.1:${adminPort}/health`,
    );
    procs.push(agent);
    const distributionUrl = `http://127.0.0.1:${distributionPort}`;
    const distribution = await startDistribution(home, distributionPort);
    procs.push(distribution);

    progress(`pushing a ${options.size}-byte random blob to both`);
    const hash = createHash("sha256");
    // The same bytes go to both registries: make each 64 MiB chunk once, push it to both.
    const CHUNK = 64 * 1024 * 1024;
    const edgeUpload = await pushChunked.start(edgeUrl, "bench/serve");
    const distUpload = await pushChunked.start(distributionUrl, "bench/serve");
    for (let at = 0; at < options.size; at += CHUNK) {
      const chunk = randomBytes(Math.min(CHUNK, options.size - at));
      hash.update(chunk);
      await edgeUpload.append(chunk);
      await distUpload.append(chunk);
    }
    const digest = `sha256:${hash.digest("hex")}`;
    await edgeUpload.finish(digest);
    await distUpload.finish(digest);

    const agentBlob = `http://127.0.0.1:${registryPort}/v2/bench/serve/blobs/${digest}`;
    const distBlob = `${distributionUrl}/v2/bench/serve/blobs/${digest}`;
    progress("warming the agent's store (one pull through it)");
    await readAll(agentBlob, digest);

    const results: { shoal: Measurement[]; distribution: Measurement[] } = { shoal: [], distribution: [] };
    for (let round = 1; round <= options.rounds; round++) {
      for (const [name, url, proc] of [["shoal", agentBlob, agent], ["distribution", distBlob, distribution]] as const) {
        const m = await measure(url, options, proc);
        results[name].push(m);
        progress(`round ${round}: ${name.padEnd(12)} ${m.mb_per_s.toFixed(0)} MB/s (${options.readers} readers, ${m.seconds.toFixed(2)} s), peak RSS ${(m.peak_rss_bytes / 2 ** 20).toFixed(0)} MiB`);
      }
    }
    // Best round of each (the one least disturbed by the rest of the machine), and the median.
    const best = (ms: Measurement[]) => ms.reduce((a, b) => (b.mb_per_s > a.mb_per_s ? b : a));
    const median = (ms: Measurement[]) => {
      const sorted = ms.map((m) => m.mb_per_s).sort((a, b) => a - b);
      return sorted[Math.floor((sorted.length - 1) / 2)]!;
    };
    const shoal = best(results.shoal);
    const dist = best(results.distribution);
    const report = {
      benchmark: "serve",
      blob_bytes: options.size,
      readers: options.readers,
      rounds: options.rounds,
      machine: { cpus: os.cpus().length, memory_bytes: os.totalmem(), node: process.version },
      shoal: { ...shoal, median_mb_per_s: median(results.shoal), rounds: results.shoal },
      distribution: { ...dist, median_mb_per_s: median(results.distribution), rounds: results.distribution },
      ratio: shoal.mb_per_s / dist.mb_per_s,
      median_ratio: median(results.shoal) / median(results.distribution),
      targets: { ratio_at_least: 1, agent_peak_rss_bytes_under: 150 * 1024 * 1024 },
    };
    await mkdir(options.out, { recursive: true });
    const file = path.join(options.out, "serve.json");
    await writeFile(file, `${JSON.stringify(report, null, 2)}\n`);
    console.log(
      `\nserve: shoal agent ${shoal.mb_per_s.toFixed(0)} MB/s, distribution ${dist.mb_per_s.toFixed(0)} MB/s, ratio ${report.ratio.toFixed(2)} ` +
        `(target ≥ 1; medians ${report.median_ratio.toFixed(2)}); agent peak RSS ${(shoal.peak_rss_bytes / 2 ** 20).toFixed(0)} MiB (target < 150 MiB)\nwritten to ${file}`,
    );
  } finally {
    for (const proc of procs.reverse()) await proc.stop();
    await rm(home, { recursive: true, force: true });
  }
}

async function startDistribution(home: string, port: number): Promise<BenchProcess> {
  const config = path.join(home, "distribution.yml");
  await writeFile(
    config,
    [
      "version: 0.1",
      "log: { level: error }",
      `storage: { filesystem: { rootdirectory: ${path.join(home, "distribution")} }, delete: { enabled: true } }`,
      `http: { addr: "127.0.0.1:${port}" }`,
      "",
    ].join("\n"),
  );
  return BenchProcess.start("docker-registry", ["serve", config], `http://127.0.0.1:${port}/v2/`);
}

/** N readers fetch the whole blob at once; each checks its length; the aggregate rate is reported. */
async function measure(url: string, options: ServeOptions, server: BenchProcess): Promise<Measurement> {
  let peak = server.rss();
  const sampler = setInterval(() => (peak = Math.max(peak, server.rss())), 50);
  const started = process.hrtime.bigint();
  const bytes = await Promise.all(Array.from({ length: options.readers }, () => readAll(url, undefined)));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  clearInterval(sampler);
  peak = Math.max(peak, server.rss());
  for (const n of bytes) if (n !== options.size) throw new Error(`${url} served ${n} of ${options.size} bytes`);
  return { mb_per_s: (options.readers * options.size) / 1e6 / seconds, seconds, peak_rss_bytes: peak };
}

/** Reads a blob to the end; with `digest`, verifies it. Returns its length. */
async function readAll(url: string, digest: string | undefined): Promise<number> {
  const res = await request(url, { maxRedirections: 0, bodyTimeout: 0, headersTimeout: 0 } as Parameters<typeof request>[1]);
  if (res.statusCode !== 200) throw new Error(`${url}: ${res.statusCode} ${await res.body.text()}`);
  const hash = digest ? createHash("sha256") : undefined;
  let n = 0;
  for await (const chunk of res.body) {
    n += (chunk as Buffer).length;
    hash?.update(chunk as Buffer);
  }
  if (hash && `sha256:${hash.digest("hex")}` !== digest) throw new Error(`${url} did not hash to ${digest}`);
  return n;
}

function progress(message: string): void {
  process.stderr.write(`[serve] ${message}\n`);
}

export function parseServeArgs(values: Record<string, string | boolean | undefined>): ServeOptions {
  return {
    size: parseSize(String(values.size ?? "1GiB")),
    readers: Number(values.readers ?? 8),
    rounds: Number(values.rounds ?? 3),
    out: path.resolve(String(values.out ?? "bench-out")),
  };
}
