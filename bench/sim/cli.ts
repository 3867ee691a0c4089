import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import type { TopLevelSpec } from "vega-lite";
import { parseSize } from "../../src/agent-node/config.js";
import { completionCdf, renderSvg } from "../lib/plots.js";
import { rarestFirst } from "../../src/shared/p2p/schedule/index.js";
import { simulateFleet, type FleetOptions, type FleetResult, type FleetRun } from "./fleet.js";

export interface SimBenchOptions extends FleetOptions {
  out: string;
  sweep: boolean;
  /** The N of a sweep (--sweep --hosts 16,64,256; default 16 … 20,000). */
  sweepHosts: number[];
}

const rate = (v: unknown, fallback: string) => parseSize(String(v ?? fallback).replace(/\/s$/, ""));

export function parseSimArgs(values: Record<string, string | boolean | undefined>): SimBenchOptions {
  const num = (name: string, fallback: number) => (values[name] === undefined ? fallback : Number(values[name]));
  const hostList = String(values.hosts ?? values.agents ?? "16").split(",").map(Number);
  const options: SimBenchOptions = {
    hosts: hostList[0]!,
    sweepHosts: values.sweep === true && hostList.length > 1 ? hostList : SWEEP_HOSTS,
    size: parseSize(String(values.size ?? "64MiB")),
    agentBandwidth: rate(values["agent-bandwidth"], "6.25MiB"),
    wanBandwidth: rate(values["wan-bandwidth"], "12.5MiB"),
    edgeBandwidth: values["edge-bandwidth"] === undefined ? undefined : rate(values["edge-bandwidth"], "0"),
    clusters: num("clusters", 1),
    zones: num("zones", 1),
    churn: num("churn", 0),
    stagger: num("stagger", 0),
    slow: num("slow", 0),
    seed: num("seed", 1),
    // The tracker as the edge runs it: --shards objects per swarm (its default), --web-seed-readers.
    shards: values.shards === undefined ? undefined : Number(values.shards),
    oneAddress: values["one-address"] === true,
    webSeedReaders: values["web-seed-readers"] === undefined ? undefined : Number(values["web-seed-readers"]),
    // Links as the real benchmark shapes them (token buckets with half a second of credit): --link-burst 0.5.
    linkBurstSeconds: num("link-burst", 0),
    // Scheduler tunables to compare policies: --tuning '{"webSeedHoldMs":200}'.
    tuning: values.tuning === undefined ? undefined : (JSON.parse(String(values.tuning)) as FleetOptions["tuning"]),
    // Policies to compare: --common N (rarest first, in order past N holders), --pieces-per-peer N,
    // --web-seed-concurrency N.
    webSeedConcurrency: values["web-seed-concurrency"] === undefined ? undefined : Number(values["web-seed-concurrency"]),
    policy: values.common === undefined ? undefined : rarestFirst(Number(values.common)),
    piecesPerPeer: values["pieces-per-peer"] === undefined ? undefined : Number(values["pieces-per-peer"]),
    out: String(values.out ?? "bench-out"),
    sweep: values.sweep === true,
  };
  for (const [k, v] of Object.entries(options)) if (typeof v === "number" && !Number.isFinite(v)) throw new Error(`--${k}: not a number`);
  return options;
}

const SWEEP_HOSTS = [16, 64, 256, 1024, 4096, 20_000];

/** A line on stderr per virtual second of a big run: where it is, and how fast it goes. */
function progress(hosts: number): FleetOptions["onSample"] {
  if (hosts < 1000) return undefined;
  const start = performance.now();
  return (sample, events) =>
    process.stderr.write(`[sim ${hosts}] t=${sample.t.toFixed(0)} s  done ${sample.done}  downlinks ${sample.downlinkUse.toFixed(2)}  ${(events / 1e6).toFixed(1)} M events  wall ${((performance.now() - start) / 1000).toFixed(0)} s\n`);
}

/** `npm run bench -- sim`: one fleet run (DIR/sim.json, DIR/sim.svg) or a sweep over N. */
export async function benchSim(options: SimBenchOptions): Promise<void> {
  await mkdir(options.out, { recursive: true });
  if (options.sweep) {
    const results: FleetResult[] = [];
    for (const hosts of options.sweepHosts) {
      const run = simulateFleet({ ...options, hosts, onSample: progress(hosts) });
      print(run);
      results.push(run.result);
    }
    await writeFile(path.join(options.out, "sim-sweep.json"), `${JSON.stringify(results, null, 2)}\n`);
    await writeFile(path.join(options.out, "sim-sweep.svg"), await sweepPlot(results));
    console.log(`written to ${path.join(options.out, "sim-sweep.json")} and sim-sweep.svg`);
    return;
  }
  const run = simulateFleet({ ...options, onSample: progress(options.hosts) });
  print(run);
  await writeFile(path.join(options.out, "sim.json"), `${JSON.stringify(run.result, null, 2)}\n`);
  await writeFile(path.join(options.out, "sim.svg"), await cdfPlot(run));
  console.log(`written to ${path.join(options.out, "sim.json")} and sim.svg`);
}

function print(run: FleetRun): void {
  const r = run.result;
  const x = (s: number) => `${s.toFixed(2)} s (${(s / r.bound_s).toFixed(3)}×)`;
  console.log(
    `sim: ${r.hosts} hosts, ${(r.blob_bytes / 2 ** 20).toFixed(0)} MiB (${run.pieceCount} pieces), bound ${r.bound_s.toFixed(2)} s\n` +
      `  p50 ${x(r.p50_s)}  p90 ${x(r.p90_s)}  p99 ${x(r.p99_s)}  p99.9 ${x(r.p999_s)}  max ${x(r.max_s)}\n` +
      `  completed ${r.completed} (killed ${run.killed}, unfinished ${run.unfinished.length})  WAN ${(r.wan_bytes / r.blob_bytes).toFixed(2)} copies  peers ${(r.peer_bytes / r.blob_bytes).toFixed(1)} copies\n` +
      `  tracker: ${r.tracker.announces} announces, peak ${r.tracker.peak_announces_per_s_per_object}/s per object (${r.tracker.objects})\n` +
      `  ${r.events} events, ${run.polls} polls (scheduler ${(run.schedulerMs / 1000).toFixed(1)} s), wall ${r.wall_s.toFixed(1)} s`,
  );
}

function cdfPlot(run: FleetRun): Promise<string> {
  const r = run.result;
  return completionCdf({
    title: `simulated: ${r.hosts} hosts pulling ${(r.blob_bytes / 2 ** 20).toFixed(0)} MiB (${(r.agent_bandwidth / 2 ** 20).toFixed(2)} MiB/s per host, ${(r.wan_bandwidth / 2 ** 20).toFixed(2)} MiB/s WAN)`,
    who: "hosts",
    boundS: r.bound_s,
    series: [{ times: run.times }],
    maxPoints: 2000,
  });
}

function sweepPlot(results: FleetResult[]): Promise<string> {
  const rows = results.flatMap((r) => [
    { hosts: r.hosts, what: "p50 / bound", value: r.p50_s / r.bound_s, panel: "completion / bound" },
    { hosts: r.hosts, what: "p99 / bound", value: r.p99_s / r.bound_s, panel: "completion / bound" },
    { hosts: r.hosts, what: "WAN bytes / blob", value: r.wan_bytes / r.blob_bytes, panel: "WAN bytes / blob" },
    { hosts: r.hosts, what: "peak announces/s per object", value: r.tracker.peak_announces_per_s_per_object, panel: "peak announces/s per tracker object" },
  ]);
  const panel = (name: string) => ({
    width: 260,
    height: 220,
    transform: [{ filter: { field: "panel", equal: name } }],
    mark: { type: "line" as const, point: true },
    encoding: {
      x: { field: "hosts", type: "quantitative" as const, title: "hosts", scale: { type: "log" as const } },
      y: { field: "value", type: "quantitative" as const, title: name },
      color: { field: "what", type: "nominal" as const, title: "" },
    },
  });
  return renderSvg({
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: `simulated sweep: ${(results[0]!.blob_bytes / 2 ** 20).toFixed(0)} MiB blob`,
    data: { values: rows },
    hconcat: [panel("completion / bound"), panel("WAN bytes / blob"), panel("peak announces/s per tracker object")],
  } as TopLevelSpec);
}
