import { formatBytes } from "../../shared/bytes.js";
import type { AgentStatus } from "./status.js";

const ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** Text for HTML: every character that could start markup is escaped. */
export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

/** The agent's admin page (`GET /` on the admin port): its store, bytes by source and swarms, refreshed every few seconds. */
export function renderDashboard(status: AgentStatus): string {
  const e = escapeHtml;
  const { store } = status;
  const used = store.capacityBytes > 0 ? (100 * store.bytes) / store.capacityBytes : 0;
  const peer = status.bytesBySource.peer ?? 0;
  const origin = status.bytesBySource.origin ?? 0;
  const share = peer + origin > 0 ? (100 * peer) / (peer + origin) : 0;
  const swarms = status.swarms
    .map(
      (s) =>
        `<tr data-swarm="${e(s.digest)}"><td><code title="${e(s.digest)}">${e(s.digest.slice(0, 19))}…</code></td><td>${e(s.role)}</td>` +
        `<td class="num">${s.peers ?? ""}</td><td class="num">${s.pieces ? `${s.have ?? 0}/${s.pieces}` : ""}</td></tr>`,
    )
    .join("");
  const downloads = status.downloads
    .map((d) => `<tr><td><code>${e(d.digest.slice(0, 19))}…</code></td><td>${e(d.state)}</td><td class="num">${formatBytes(d.written)}${d.size ? ` / ${formatBytes(d.size)}` : ""}</td></tr>`)
    .join("");
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="3"><link rel="icon" href="data:,"><title>Shoal agent</title><style>
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#1d2733;background:#f6f8fa}h1{font-size:20px;margin:0 0 4px}h2{font-size:15px;margin:0 0 8px}
.sub{color:#5b6b7c;margin-bottom:16px}section{background:#fff;border:1px solid #d8dee4;border-radius:8px;padding:12px 16px;margin-bottom:16px}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:4px 10px 4px 0;border-bottom:1px solid #eef1f4}th{color:#5b6b7c}
code{font:12px ui-monospace,monospace}.num{font-variant-numeric:tabular-nums}.bar{height:10px;background:#eef1f4;border-radius:5px;overflow:hidden;margin:6px 0}
.bar>div{height:100%;background:#2f81f7}.empty{color:#8a96a3}</style></head><body>
<h1>Shoal agent <code>${e(status.peerId.slice(0, 12))}</code></h1>
<div class="sub">zone ${e(status.zone)} · cluster ${e(status.cluster)} · edge ${e(status.edge)} · up ${status.uptimeSeconds} s</div>
<section id="store"><h2>Store</h2><div class="bar"><div style="width:${used.toFixed(1)}%"></div></div>
<span class="num" id="store-bytes">${formatBytes(store.bytes)}</span> of ${formatBytes(store.capacityBytes)} (${used.toFixed(1)}%) · ${store.blobs} blobs · ${store.pinned} in use</section>
<section id="sources"><h2>Bytes fetched, by source</h2><div class="bar"><div style="width:${share.toFixed(1)}%"></div></div>
from peers <span class="num" id="from-peers">${formatBytes(peer)}</span> · from the edge <span class="num" id="from-edge">${formatBytes(origin)}</span> (${share.toFixed(0)}% from peers)</section>
<section id="swarms"><h2>Swarms</h2>${swarms ? `<table><tr><th>blob</th><th>role</th><th>peers</th><th>pieces</th></tr>${swarms}</table>` : `<p class="empty">None.</p>`}</section>
<section id="downloads"><h2>Downloads</h2>${downloads ? `<table><tr><th>blob</th><th>state</th><th>written</th></tr>${downloads}</table>` : `<p class="empty">None in progress.</p>`}</section>
</body></html>`;
}
