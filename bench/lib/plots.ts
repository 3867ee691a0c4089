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
  const rows: { mode: string; seconds: number; fraction: number }[] = [];
  for (const mode of MODES) {
    const result = report[mode];
    if (!result) continue;
    const n = result.times_s.length;
    rows.push({ mode, seconds: 0, fraction: 0 });
    result.times_s.forEach((seconds, i) => rows.push({ mode, seconds, fraction: (i + 1) / n }));
  }
  const title = `${report.agents} agents pulling ${(report.blob_bytes / 2 ** 20).toFixed(0)} MiB at once (${(report.agent_bandwidth / 2 ** 20).toFixed(2)} MiB/s per agent, ${(report.wan_bandwidth / 2 ** 20).toFixed(2)} MiB/s uplink)`;
  return renderSvg({
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title,
    width: 640,
    height: 360,
    layer: [
      {
        data: { values: rows },
        mark: { type: "line", interpolate: "step-after", strokeWidth: 2 },
        encoding: {
          x: { field: "seconds", type: "quantitative", title: "completion time (s)" },
          y: { field: "fraction", type: "quantitative", title: "fraction of agents done", axis: { format: "%" } },
          color: { field: "mode", type: "nominal", sort: [...MODES], title: "mode" },
        },
      },
      {
        data: { values: [{ bound: report.bound_s, label: `bound ${report.bound_s.toFixed(2)} s` }] },
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
