import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseSize } from "../src/agent-node/config.js";
import { bundleAgent } from "../src/devcluster/build-agent.js";
import { BenchProcess, freePorts, startBenchEdge } from "./lib/processes.js";
import { LimitedLink } from "./lib/link.js";
import { LinkProcess } from "./lib/link-process.js";
import { pushOneLayerImage } from "./lib/push.js";
import { ProcessSampler } from "./lib/sampler.js";
import { cdfPlot, sweepPlot } from "./lib/plots.js";
import { AGENT_ENV, AGENT_NODE_FLAGS } from "../src/agent-node/node-flags.js";

export interface P2pBenchOptions {
  agents: number;
  size: number;
  agentBandwidth: number;
  wanBandwidth: number;
  out: string;
  sweep: boolean;
  /** Which modes to run (all three by default; the JSON has null for the others). */
  modes: Mode[];
  /** The layer every agent pulls, untimed, before the timed pull (see WARMUP_NAME). */
  warmupBytes: number;
}

export type Mode = "p2p" | "direct" | "registry";

export interface ModeResult {
  p50_s: number;
  p90_s: number;
  p99_s: number;
  max_s: number;
  /** Bytes that crossed the uplink (edge or registry → the hosts), both directions. */
  wan_bytes: number;
  agent_cpu_s: number;
  /** The part of agent_cpu_s spent in the kernel (sockets, files). */
  agent_system_cpu_s: number;
  agent_peak_rss_bytes: number;
  times_s: number[];
}

export interface P2pReport {
  agents: number;
  blob_bytes: number;
  agent_bandwidth: number;
  wan_bandwidth: number;
  bound_s: number;
  p2p: ModeResult | null;
  direct: ModeResult | null;
  registry: ModeResult | null;
  /** Modes that failed (null above), and why. */
  failed?: Partial<Record<Mode, string>>;
}

const NAME = "bench/p2p";
const TAG = "v1";
/**
 * An image every agent pulls, untimed, before the timed pull: agents in a fleet are warm processes
 * (connected to the edge, their code compiled). `--warmup SIZE` sets its layer's size: 1 MiB (one
 * piece) warms the connections but leaves V8 compiling the hot paths during the timed pull.
 */
const WARMUP_NAME = "bench/warmup";

/**
 * `npm run bench -- p2p`: N agents pull one image with an S-byte layer at once, each limited to B
 * in and B out, all agent↔edge traffic through one W uplink. Modes, in one run on one machine:
 * p2p (agents feed each other), direct (P2P off: every agent pulls from the edge), and registry
 * (N skopeo pulls from Debian's docker-registry through the same uplink, each limited to B).
 */
export async function benchP2p(options: P2pBenchOptions): Promise<void> {
  await mkdir(options.out, { recursive: true });
  if (options.sweep) return sweep(options);
  const report = await runOnce(options, true);
  const file = path.join(options.out, "p2p.json");
  await writeFile(file, `${JSON.stringify(report, null, 2)}\n`);
  await writeFile(path.join(options.out, "p2p.svg"), await cdfPlot(report));
  printReport(report);
  console.log(`written to ${file} and ${path.join(options.out, "p2p.svg")}`);
}

async function sweep(options: P2pBenchOptions): Promise<void> {
  const reports: P2pReport[] = [];
  for (const agents of [4, 8, 16, 32]) {
    const report = await runOnce({ ...options, agents }, false);
    printReport(report);
    reports.push(report);
  }
  await writeFile(path.join(options.out, "p2p-sweep.json"), `${JSON.stringify(reports, null, 2)}\n`);
  await writeFile(path.join(options.out, "p2p-sweep.svg"), await sweepPlot(reports));
  console.log(`written to ${path.join(options.out, "p2p-sweep.json")} and p2p-sweep.svg`);
}

async function runOnce(options: P2pBenchOptions, withRegistry: boolean): Promise<P2pReport> {
  const home = await mkdtemp(path.join(os.tmpdir(), "shoal-bench-p2p-"));
  const cleanups: (() => Promise<unknown>)[] = [];
  const bound = Math.max(options.size / options.wanBandwidth, options.size / options.agentBandwidth);
  try {
    const [edgePort] = (await freePorts(1)) as [number];
    progress(`${options.agents} agents, ${mib(options.size)}, ${mib(options.agentBandwidth)}/s per agent, ${mib(options.wanBandwidth)}/s uplink: bound ${bound.toFixed(2)} s`);
    const edge = await startBenchEdge(edgePort, home);
    cleanups.push(() => edge.stop());
    const layer = randomBytes(options.size);
    const image = await pushOneLayerImage(`http://127.0.0.1:${edgePort}`, NAME, TAG, layer);
    const warmup = await pushOneLayerImage(`http://127.0.0.1:${edgePort}`, WARMUP_NAME, TAG, randomBytes(options.warmupBytes));
    // The uplink and the clients run in processes of their own (a link process; curl), so the
    // benchmark's own event loop paces nothing and reads nothing.
    const uplink = await LinkProcess.start(edgePort, options.wanBandwidth);
    cleanups.push(() => uplink.stop());
    const bundle = await bundleAgent();

    const images = { timed: [image.configDigest, image.layerDigest], warmup: [warmup.configDigest, warmup.layerDigest] };
    // A mode that fails (its clients gave up) is reported as failed, with why; the others still run.
    const failed: Partial<Record<Mode, string>> = {};
    const attempt = async (mode: Mode, run: () => Promise<ModeResult | null>): Promise<ModeResult | null> => {
      if (!options.modes.includes(mode)) return null;
      try {
        return await run();
      } catch (error) {
        failed[mode] = (error as Error).message;
        progress(`${mode}: failed: ${(error as Error).message.split("\n")[0]}`);
        return null;
      }
    };
    const p2p = await attempt("p2p", () => agentMode("p2p", options, home, bundle, uplink, images, []));
    const direct = await attempt("direct", () => agentMode("direct", options, home, bundle, uplink, images, ["--no-p2p"]));
    const registry = withRegistry ? await attempt("registry", () => registryMode(options, home, layer)) : null;
    return {
      agents: options.agents,
      blob_bytes: options.size,
      agent_bandwidth: options.agentBandwidth,
      wan_bandwidth: options.wanBandwidth,
      bound_s: bound,
      p2p,
      direct,
      registry,
      ...(Object.keys(failed).length > 0 ? { failed } : {}),
    };
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
    await rm(home, { recursive: true, force: true });
  }
}

/** Fresh agents (empty stores) behind the uplink pull the image at once; times per agent. */
async function agentMode(
  mode: string,
  options: P2pBenchOptions,
  home: string,
  bundle: string,
  uplink: LinkProcess,
  images: { timed: string[]; warmup: string[] },
  flags: string[],
): Promise<ModeResult> {
  const ports = await freePorts(3 * options.agents);
  const rate = String(Math.floor(options.agentBandwidth));
  const agents = await Promise.all(
    Array.from({ length: options.agents }, (_, i) => {
      const [registry, peer, admin] = ports.slice(3 * i, 3 * i + 3) as [number, number, number];
      // SHOAL_BENCH_CPU_PROF=DIR: a V8 CPU profile of each agent, written when it stops.
      // SHOAL_BENCH_AGENT_NODE_FLAGS="--trace-gc …": V8/Node flags for every agent (their output goes to the agent logs).
      const nodeFlags = [
        ...AGENT_NODE_FLAGS,
        ...(process.env.SHOAL_BENCH_CPU_PROF ? ["--cpu-prof", `--cpu-prof-dir=${process.env.SHOAL_BENCH_CPU_PROF}`] : []),
        ...(process.env.SHOAL_BENCH_AGENT_NODE_FLAGS ?? "").split(" ").filter(Boolean),
      ];
      return BenchProcess.start(
        process.execPath,
        [
          ...nodeFlags,
          bundle,
          "agent",
          `--edge=${uplink.url}`,
          `--store-dir=${path.join(home, mode, `agent-${i}`)}`,
          `--agent-registry-port=${registry}`,
          `--peer-port=${peer}`,
          `--agent-server-port=${admin}`,
          `--ingress-rate=${rate}`,
          `--egress-rate=${rate}`,
          `--log-level=${process.env.SHOAL_BENCH_AGENT_LOG_LEVEL ?? "warn"}`,
          ...flags,
        ],
        `http://127.0.0.1:${admin}/health`,
        AGENT_ENV,
      ).then((proc) => ({ proc, registry }));
    }),
  );
  try {
    // Warm processes, as in a fleet: each agent has talked to the edge and its peers before.
    await Promise.all(agents.map(({ registry }) => curlPull(`http://127.0.0.1:${registry}`, WARMUP_NAME, images.warmup)));
    progress(`${mode}: ${options.agents} agents pulling at once`);
    await uplink.bytes(true);
    const sampler = new ProcessSampler(() => agents.map((a) => a.proc.child.pid!));
    const started = performance.now();
    let done = 0;
    const times = await Promise.all(
      agents.map(async ({ registry }) => {
        await curlPull(`http://127.0.0.1:${registry}`, NAME, images.timed);
        done++;
        if (done % Math.max(1, Math.floor(options.agents / 4)) === 0) progress(`${mode}: ${done}/${options.agents} done`);
        return (performance.now() - started) / 1000;
      }),
    );
    const usage = sampler.stop();
    return summarize(times, await uplink.bytes(), usage);
  } finally {
    await Promise.all(agents.map((a) => a.proc.stop()));
    // SHOAL_BENCH_AGENT_LOG_LEVEL=debug: keep each agent's log beside the results.
    if (process.env.SHOAL_BENCH_AGENT_LOG_LEVEL) {
      await Promise.all(agents.map((a, i) => writeFile(path.join(options.out, `${mode}-agent-${i}.log`), a.proc.output)));
    }
  }
}

/**
 * What a docker pull does through an agent, by curl (a client that costs the benchmark's event
 * loop nothing): the manifest by tag, then its blobs in order, each retried up to 3 times like a
 * docker pull's; in the end every response must be a 200.
 */
async function curlPull(base: string, name: string, blobs: string[]): Promise<void> {
  const urls = [`${base}/v2/${name}/manifests/${TAG}`, ...blobs.map((d) => `${base}/v2/${name}/blobs/${d}`)];
  // Retries as docker and containerd do (a 503 when the edge is overloaded); the time counts.
  // Done here, not by curl's --retry: that truncates its output file first, and /dev/null cannot be.
  let done = 0;
  let failures = 0;
  while (done < urls.length) {
    const attempt = await curl(urls.slice(done));
    done += attempt.ok;
    if (done === urls.length) return;
    if (++failures > CURL_RETRIES) throw new Error(`curl pull from ${base} failed (${attempt.code}) after ${CURL_RETRIES} retries: ${attempt.output.slice(-500)}`);
    progress(`retrying ${urls[done]} (curl exit ${attempt.code}: ${attempt.output.trim().split("\n")[0]})`);
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

const CURL_RETRIES = 3;

/** One curl for `urls` in turn on one connection: how many answered 200 before one failed. */
function curl(urls: string[]): Promise<{ ok: number; code: number | null; output: string }> {
  const args = ["-sS", "--fail", "--fail-early", "-H", "Accept: application/vnd.oci.image.manifest.v1+json", "-w", "%{http_code} %{size_download}\\n"];
  for (const url of urls) args.push("-o", "/dev/null", url);
  return new Promise((resolve, reject) => {
    const child = spawn("curl", args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => {
      // One "<status> <bytes>" line per URL curl tried; it stops at the first failure, whose line
      // (if any) may say 200 too (a transfer cut short): only the lines before the last count.
      const lines = out.trim().split("\n").filter(Boolean);
      const answered = lines.findIndex((l) => !l.startsWith("200 "));
      const ok = code === 0 ? urls.length : Math.max(0, Math.min(lines.length - 1, answered === -1 ? lines.length : answered));
      resolve({ ok, code, output: `${err}${out}` });
    });
  });
}

/** N skopeo pulls from distribution, each through its own B link, all through one W uplink. */
async function registryMode(options: P2pBenchOptions, home: string, layer: Buffer): Promise<ModeResult | null> {
  const [port] = (await freePorts(1)) as [number];
  const config = path.join(home, "distribution.yml");
  await writeFile(
    config,
    ["version: 0.1", "log: { level: error }", `storage: { filesystem: { rootdirectory: ${path.join(home, "distribution")} } }`, `http: { addr: "127.0.0.1:${port}" }`, ""].join("\n"),
  );
  let registry: BenchProcess;
  try {
    registry = await BenchProcess.start("docker-registry", ["serve", config], `http://127.0.0.1:${port}/v2/`);
  } catch (error) {
    progress(`registry: skipped (${(error as Error).message.split("\n")[0]})`);
    return null;
  }
  const links: LimitedLink[] = [];
  try {
    await pushOneLayerImage(`http://127.0.0.1:${port}`, NAME, TAG, layer);
    const uplink = await new LimitedLink({ host: "127.0.0.1", port }, options.wanBandwidth).start();
    links.push(uplink);
    for (let i = 0; i < options.agents; i++) links.push(await new LimitedLink({ host: "127.0.0.1", port: uplink.port }, options.agentBandwidth).start());
    await mkdir(path.join(home, "registry-pulls"), { recursive: true });
    progress(`registry: ${options.agents} skopeo pulls at once`);
    const pids: number[] = [];
    const sampler = new ProcessSampler(() => pids, true);
    const started = performance.now();
    const times = await Promise.all(
      links.slice(1).map(async (link, i) => {
        await skopeoPull(`127.0.0.1:${link.port}`, path.join(home, "registry-pulls", String(i)), pids);
        return (performance.now() - started) / 1000;
      }),
    );
    const usage = sampler.stop();
    return summarize(times, uplink.bytesDown + uplink.bytesUp, usage);
  } finally {
    for (const link of links) await link.stop();
    await registry.stop();
  }
}

function skopeoPull(host: string, dir: string, pids: number[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn("skopeo", ["copy", "--retry-times", "3", "--src-tls-verify=false", `docker://${host}/${NAME}:${TAG}`, `dir:${dir}`], { stdio: ["ignore", "ignore", "pipe"] });
    if (child.pid) pids.push(child.pid);
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`skopeo exited ${code}: ${stderr.slice(-500)}`))));
  });
}

function summarize(times: number[], wanBytes: number, usage: { cpuSeconds: number; systemCpuSeconds: number; peakRssBytes: number }): ModeResult {
  const sorted = [...times].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
  return { p50_s: at(0.5), p90_s: at(0.9), p99_s: at(0.99), max_s: sorted[sorted.length - 1]!, wan_bytes: wanBytes, agent_cpu_s: usage.cpuSeconds, agent_system_cpu_s: usage.systemCpuSeconds, agent_peak_rss_bytes: usage.peakRssBytes, times_s: sorted };
}

function printReport(r: P2pReport): void {
  const row = (name: string, m: ModeResult | null) =>
    m
      ? `${name.padEnd(9)} p50 ${m.p50_s.toFixed(2).padStart(7)} s (${(m.p50_s / r.bound_s).toFixed(2)}× bound)  p99 ${m.p99_s.toFixed(2).padStart(7)} s (${(m.p99_s / r.bound_s).toFixed(2)}×)  ` +
        `WAN ${(m.wan_bytes / r.blob_bytes).toFixed(2)}× blob  CPU ${m.agent_cpu_s.toFixed(1)} s (kernel ${m.agent_system_cpu_s.toFixed(1)} s)  peak RSS ${mib(m.agent_peak_rss_bytes)}`
      : `${name.padEnd(9)} ${r.failed?.[name as Mode] ? `failed: ${r.failed[name as Mode]!.split("\n")[0]}` : "(not run)"}`;
  console.log(`\np2p benchmark: ${r.agents} agents, ${mib(r.blob_bytes)} blob, bound ${r.bound_s.toFixed(2)} s`);
  console.log(row("p2p", r.p2p));
  console.log(row("direct", r.direct));
  console.log(row("registry", r.registry));
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(bytes % 2 ** 20 === 0 ? 0 : 2)} MiB`;
}

function progress(message: string): void {
  process.stderr.write(`[p2p] ${message}\n`);
}

export function parseP2pArgs(values: Record<string, string | boolean | undefined>): P2pBenchOptions {
  const sweeping = values.sweep === true;
  return {
    agents: Number(values.agents ?? 16),
    size: parseSize(String(values.size ?? (sweeping ? "16MiB" : "64MiB"))),
    agentBandwidth: parseSize(String(values["agent-bandwidth"] ?? "6.25MiB").replace(/\/s$/, "")),
    wanBandwidth: parseSize(String(values["wan-bandwidth"] ?? "12.5MiB").replace(/\/s$/, "")),
    out: path.resolve(String(values.out ?? "bench-out")),
    sweep: sweeping,
    modes: parseModes(values.modes),
    warmupBytes: parseSize(String(values.warmup ?? "1MiB")),
  };
}

function parseModes(value: string | boolean | undefined): Mode[] {
  if (value === undefined || value === true || value === false) return ["p2p", "direct", "registry"];
  const modes = value.split(",").map((m) => m.trim());
  for (const mode of modes) if (!["p2p", "direct", "registry"].includes(mode)) throw new Error(`unknown mode ${JSON.stringify(mode)}: use p2p, direct, registry`);
  return modes as Mode[];
}
