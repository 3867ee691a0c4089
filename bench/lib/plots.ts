import { compile, type TopLevelSpec } from "vega-lite";
import { View, parse } from "vega";
import type { P2pReport } from "../p2p.js";

/** Renders a Vega-Lite spec to SVG, headless (no browser, no canvas). */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new View(parse(compile(spec).spec), { renderer: "none" });
  return view.toSVG();
}

const MODES = ["p2p", "direct", "registry"] as const;

/** Completion-time CDFs of the three modes, with the physical bound marked. */
export function cdfPlot(report: P2pReport): Promise<string> {
  return completionCdf({
    title: `${report.agents} agents pulling ${(report.blob_bytes / 2 ** 20).toFixed(0)} MiB at once (${(report.agent_bandwidth / 2 ** 20).toFixed(2)} MiB/s per agent, ${(report.wan_bandwidth / 2 ** 20).toFixed(2)} MiB/s uplink)`,
    who: "agents",
    boundS: report.bound_s,
    series: MODES.flatMap((mode) => (report[mode] ? [{ name: mode, times: report[mode].times_s }] : [])),
    seriesTitle: "mode",
  });
}

export interface CompletionCdfOptions {
  title: string;
  /** What completes ("agents", "hosts"), for the y axis. */
  who: string;
  boundS: number;
  /** Sorted completion times (s) of each curve; named curves get a colour each. */
  series: { name?: string; times: number[] }[];
  seriesTitle?: string;
  /** Points drawn per curve at most (a 20,000-host curve needs no 20,000 points). */
  maxPoints?: number;
}

/** Completion-time CDFs (fraction done against time) with the physical bound marked. */
export function completionCdf(options: CompletionCdfOptions): Promise<string> {
  const rows = options.series.flatMap(({ name, times }) => {
    const n = times.length;
    const every = Math.max(1, Math.floor(n / (options.maxPoints ?? Number.POSITIVE_INFINITY)));
    return [{ series: name, seconds: 0, fraction: 0 }, ...times.flatMap((seconds, i) => (i % every === 0 || i === n - 1 ? [{ series: name, seconds, fraction: (i + 1) / n }] : []))];
  });
  const named = options.series.some((s) => s.name !== undefined);
  return renderSvg({
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: options.title,
    width: 640,
    height: 360,
    layer: [
      {
        data: { values: rows },
        mark: { type: "line", interpolate: "step-after", strokeWidth: 2 },
        encoding: {
          x: { field: "seconds", type: "quantitative", title: "completion time (s)" },
          y: { field: "fraction", type: "quantitative", title: `fraction of ${options.who} done`, axis: { format: "%" } },
          ...(named ? { color: { field: "series", type: "nominal", sort: options.series.map((s) => s.name!), title: options.seriesTitle ?? "" } } : {}),
        },
      },
      {
        data: { values: [{ bound: options.boundS, label: `bound ${options.boundS.toFixed(2)} s` }] },
        layer: [
          { mark: { type: "rule", strokeDash: [6, 4], color: "black" }, encoding: { x: { field: "bound", type: "quantitative" } } },
          { mark: { type: "text", align: "left", dx: 4, dy: -150, color: "black" }, encoding: { x: { field: "bound", type: "quantitative" }, text: { field: "label" } } },
        ],
      },
    ],
  });
}

/** How the cost grows with the cluster: p50 over the bound, and uplink bytes per blob, against N. */
export function sweepPlot(reports: P2pReport[]): Promise<string> {
  const rows = reports.flatMap((r) =>
    (["p2p", "direct"] as const).flatMap((mode) => {
      const m = r[mode];
      return m ? [{ agents: r.agents, mode, p50OverBound: m.p50_s / r.bound_s, wanPerBlob: m.wan_bytes / r.blob_bytes }] : [];
    }),
  );
  const panel = (field: string, title: string) => ({
    width: 320,
    height: 260,
    mark: { type: "line" as const, point: true },
    encoding: {
      x: { field: "agents", type: "quantitative" as const, title: "agents", scale: { type: "log" as const, base: 2 } },
      y: { field, type: "quantitative" as const, title },
      color: { field: "mode", type: "nominal" as const, title: "mode" },
    },
  });
  return renderSvg({
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: `Sweep: ${(reports[0]!.blob_bytes / 2 ** 20).toFixed(0)} MiB blob`,
    data: { values: rows },
    hconcat: [panel("p50OverBound", "p50 completion / bound"), panel("wanPerBlob", "uplink bytes / blob size")],
  } as TopLevelSpec);
}
