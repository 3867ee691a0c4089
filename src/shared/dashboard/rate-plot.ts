import { formatBytes } from "../bytes.js";
import type { RateSamples } from "./rate-history.js";

export interface PlotSeries {
  /** The key in `RateSamples.series`. */
  name: string;
  label: string;
  color: string;
}

const ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
const escape = (value: string) => value.replace(/[&<>"']/g, (c) => ESCAPES[c]!);

const WIDTH = 600;
const HEIGHT = 140;
const TOP = 16;
const BOTTOM = 122;

/**
 * Bytes per second as an inline SVG line plot drawn on the server (no script, no library): one
 * polyline per series over the samples' seconds, the peak rate on the y axis, a legend under it.
 * The SVG scales to its container's width, so a narrow screen never scrolls sideways.
 */
export function renderRatePlot(samples: RateSamples, series: readonly PlotSeries[], title: string): string {
  const count = Math.max(1, ...series.map((s) => samples.series[s.name]?.length ?? 0));
  const peak = Math.max(0, ...series.flatMap((s) => samples.series[s.name] ?? []));
  const scale = peak > 0 ? peak : 1;
  const x = (i: number) => (count <= 1 ? WIDTH : (i * WIDTH) / (count - 1)).toFixed(1);
  const y = (v: number) => (BOTTOM - ((BOTTOM - TOP) * v) / scale).toFixed(1);
  const lines = series
    .map((s) => {
      const values = samples.series[s.name] ?? [];
      const points = values.map((v, i) => `${x(i)},${y(v)}`).join(" ");
      const total = values.reduce((a, b) => a + b, 0);
      return `<polyline class="rate" data-series="${escape(s.name)}" data-total="${total}" fill="none" stroke="${escape(s.color)}" stroke-width="2" vector-effect="non-scaling-stroke" points="${points}"/>`;
    })
    .join("");
  const legend = series
    .map((s) => `<span class="key"><i style="background:${escape(s.color)}"></i>${escape(s.label)}</span>`)
    .join("");
  const minutes = Math.round(count / 60);
  return (
    `<figure class="plot"><svg role="img" aria-label="${escape(title)}" viewBox="0 0 ${WIDTH} ${HEIGHT}" preserveAspectRatio="none" width="100%" height="${HEIGHT}">` +
    `<line x1="0" y1="${BOTTOM}" x2="${WIDTH}" y2="${BOTTOM}" stroke="#d8dee4"/><line x1="0" y1="${TOP}" x2="${WIDTH}" y2="${TOP}" stroke="#eef1f4" stroke-dasharray="4 4"/>` +
    `${lines}</svg>` +
    `<figcaption><span class="peak">peak ${escape(formatBytes(peak))}/s</span> · last ${minutes > 0 ? `${minutes} min` : `${count} s`}, per second <span class="legend">${legend}</span></figcaption></figure>`
  );
}

/** The CSS the plot's markup expects (both dashboards include it). */
export const RATE_PLOT_STYLE =
  ".plot{margin:0}.plot svg{display:block;max-width:100%;background:#fbfcfd;border:1px solid #eef1f4;border-radius:6px}" +
  ".plot figcaption{color:#5b6b7c;font-size:12px;margin-top:4px}.legend{display:inline-flex;flex-wrap:wrap;gap:4px 12px;margin-left:8px}" +
  ".key i{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:4px;vertical-align:-1px}";
