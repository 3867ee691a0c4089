import { formatBytes } from "../../shared/bytes.js";
import { RATE_PLOT_STYLE, renderRatePlot } from "../../shared/dashboard/rate-plot.js";
import type { AgentStatus } from "./status.js";

const ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** Text for HTML: every character that could start markup is escaped. */
export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

/** The colours of the two sources, the same in the bar, its legend and the plot. */
const PEER_COLOR = "#2f81f7";
const EDGE_COLOR = "#e8912d";
const UPLOAD_COLOR = "#1a7f37";

const STYLE = `body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#1d2733;background:#f6f8fa}h1{font-size:20px;margin:0 0 4px;overflow-wrap:anywhere}h2{font-size:15px;margin:0 0 8px}
.sub{color:#5b6b7c;margin-bottom:16px;overflow-wrap:anywhere}section{background:#fff;border:1px solid #d8dee4;border-radius:8px;padding:12px 16px;margin-bottom:16px}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:4px 10px 4px 0;border-bottom:1px solid #eef1f4;vertical-align:top}th{color:#5b6b7c}
code{font:12px ui-monospace,monospace;overflow-wrap:anywhere}.num{font-variant-numeric:tabular-nums;white-space:nowrap}.bar{display:flex;height:10px;background:#eef1f4;border-radius:5px;overflow:hidden;margin:6px 0}
.bar>div{height:100%}.empty{color:#8a96a3}.image{display:block}.part{color:#5b6b7c;font-size:12px}.wide{overflow-x:auto}
.legend-row{display:flex;flex-wrap:wrap;gap:4px 16px}.key i{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:4px;vertical-align:-1px}
@media (max-width:600px){body{margin:8px}section{padding:10px}table{font-size:12px}th,td{padding:4px 6px 4px 0}}${RATE_PLOT_STYLE}`;

/** The agent's admin page (`GET /` on the admin port): its store, bytes by source, throughput, swarms and pulls, refreshed every few seconds. */
export function renderDashboard(status: AgentStatus): string {
  const e = escapeHtml;
  const { store } = status;
  const used = store.capacityBytes > 0 ? (100 * store.bytes) / store.capacityBytes : 0;
  const peer = status.bytesBySource.peer ?? 0;
  const origin = status.bytesBySource.origin ?? 0;
  const fetched = peer + origin;
  const share = fetched > 0 ? (100 * peer) / fetched : 0;
  // Grey only while nothing was fetched; otherwise blue (peers) and orange (the edge) side by side.
  const sourceBar =
    fetched > 0
      ? `<div class="bar" title="${share.toFixed(0)}% from peers"><div style="width:${share.toFixed(1)}%;background:${PEER_COLOR}"></div><div style="width:${(100 - share).toFixed(1)}%;background:${EDGE_COLOR}"></div></div>`
      : `<div class="bar" title="nothing fetched yet"></div>`;
  const swarms = status.swarms
    .map(
      (s) =>
        `<tr data-swarm="${e(s.digest)}"><td>${s.image ? `<span class="image">${e(s.image)}</span><span class="part">${e(s.part ?? "")}</span> ` : ""}<code title="${e(s.digest)}">${e(s.digest.slice(0, 19))}…</code></td>` +
        `<td class="num size">${s.size === undefined ? "" : formatBytes(s.size)}</td><td>${e(s.role)}</td>` +
        `<td class="num peers">${s.peers ?? 0}</td><td class="num">${s.pieces ? `${s.have ?? 0}/${s.pieces}` : ""}</td></tr>`,
    )
    .join("");
  const pulls = (status.pulls ?? []).map((p) => `<tr data-image="${e(p.image)}"><td><code>${e(p.image)}</code></td><td class="num pulls">${p.count}</td></tr>`).join("");
  const downloads = status.downloads
    .map((d) => `<tr><td><code>${e(d.digest.slice(0, 19))}…</code></td><td>${e(d.state)}</td><td class="num">${formatBytes(d.written)}${d.size ? ` / ${formatBytes(d.size)}` : ""}</td></tr>`)
    .join("");
  const plot = status.throughput
    ? renderRatePlot(
        status.throughput,
        [
          { name: "peer", label: "from peers", color: PEER_COLOR },
          { name: "origin", label: "from the edge", color: EDGE_COLOR },
          { name: "uploaded", label: "sent to peers", color: UPLOAD_COLOR },
        ],
        "bytes per second from peers, from the edge and sent to peers",
      )
    : `<p class="empty">No samples yet.</p>`;
  const key = (color: string, text: string) => `<span class="key"><i style="background:${color}"></i>${text}</span>`;
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><meta http-equiv="refresh" content="3"><link rel="icon" href="data:,"><title>Shoal agent</title><style>${STYLE}</style></head><body>
<h1>Shoal agent <code>${e(status.peerId.slice(0, 12))}</code></h1>
<div class="sub">zone ${e(status.zone)} · cluster ${e(status.cluster)} · edge ${e(status.edge)} · up ${status.uptimeSeconds} s</div>
<section id="store"><h2>Store</h2><div class="bar"><div style="width:${used.toFixed(1)}%;background:${PEER_COLOR}"></div></div>
<span class="num" id="store-bytes">${formatBytes(store.bytes)}</span> of ${formatBytes(store.capacityBytes)} (${used.toFixed(1)}%) · ${store.blobs} blobs · ${store.pinned} in use</section>
<section id="sources"><h2>Bytes fetched, by source</h2>${sourceBar}
<div class="legend-row">${key(PEER_COLOR, `from peers <span class="num" id="from-peers">${formatBytes(peer)}</span>`)}${key(EDGE_COLOR, `from the edge <span class="num" id="from-edge">${formatBytes(origin)}</span>`)}<span>(${share.toFixed(0)}% from peers)</span></div>
<div class="legend-row">${key(UPLOAD_COLOR, `sent to peers <span class="num" id="to-peers">${formatBytes(status.bytesToPeers ?? 0)}</span>`)}<span>sent to local clients <span class="num" id="to-clients">${formatBytes(status.bytesToClients ?? 0)}</span></span></div></section>
<section id="throughput"><h2>Throughput</h2>${plot}</section>
<section id="swarms"><h2>Swarms</h2>${swarms ? `<div class="wide"><table><tr><th>image · blob</th><th>size</th><th>role</th><th>peers</th><th>pieces</th></tr>${swarms}</table></div>` : `<p class="empty">None.</p>`}</section>
<section id="pulls"><h2>Pulls</h2>${pulls ? `<table><tr><th>image</th><th>pulls</th></tr>${pulls}</table>` : `<p class="empty">No image pulled through this agent yet.</p>`}</section>
<section id="downloads"><h2>Downloads</h2>${downloads ? `<div class="wide"><table><tr><th>blob</th><th>state</th><th>written</th></tr>${downloads}</table></div>` : `<p class="empty">None in progress.</p>`}</section>
</body></html>`;
}
