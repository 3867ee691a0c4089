import { Hono } from "hono";
import type { FC } from "hono/jsx";
import { raw } from "hono/html";
import { formatBytes } from "../../shared/bytes.js";
import { RATE_PLOT_STYLE, renderRatePlot } from "../../shared/dashboard/rate-plot.js";
import type { AppEnv } from "../services.js";
import { dashboardData, type DashboardData } from "./data.js";

/** `GET /dashboard` (HTML, refreshes itself) and `GET /dashboard.json`: the edge at a glance. */
export const dashboardRoutes = new Hono<AppEnv>();

dashboardRoutes.get("/dashboard.json", async (c) => c.json(await dashboardData(c.get("services"))));

dashboardRoutes.get("/dashboard", async (c) => {
  const data = await dashboardData(c.get("services"));
  return c.html(<Page data={data} />);
});

const short = (digest: string) => `${digest.slice(0, 19)}…`;
const ago = (at: number, now: number) => {
  const s = Math.max(0, Math.round((now - at) / 1000));
  return s < 60 ? `${s} s ago` : s < 3600 ? `${Math.round(s / 60)} min ago` : `${Math.round(s / 3600)} h ago`;
};

const STYLE = `
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#1d2733;background:#f6f8fa}
h1{font-size:20px;margin:0 0 4px} h2{font-size:15px;margin:24px 0 8px}
.sub{color:#5b6b7c;margin-bottom:16px} section{background:#fff;border:1px solid #d8dee4;border-radius:8px;padding:12px 16px;margin-bottom:16px}
table{border-collapse:collapse;width:100%} th,td{text-align:left;padding:4px 10px 4px 0;border-bottom:1px solid #eef1f4;vertical-align:top}
th{color:#5b6b7c;font-weight:600} code{font:12px ui-monospace,monospace} .tag{display:inline-block;background:#eef4ff;border-radius:4px;padding:0 6px;margin:0 4px 2px 0}
.num{font-variant-numeric:tabular-nums;white-space:nowrap} .bad{color:#b42318} .empty{color:#8a96a3}
code,.sub{overflow-wrap:anywhere} .wide{overflow-x:auto} .part{color:#5b6b7c;font-size:12px} .image{display:block} .pulls{color:#5b6b7c;font-size:12px}
@media (max-width:600px){body{margin:8px} section{padding:10px} table{font-size:12px} th,td{padding:4px 6px 4px 0}}
${RATE_PLOT_STYLE}`;

const Table: FC<{ headers: string[]; children?: unknown }> = ({ headers, children }) => (
  <div class="wide">
    <table>
      <tr>
        {headers.map((h) => (
          <th>{h}</th>
        ))}
      </tr>
      {children}
    </table>
  </div>
);

/** A titled table, or a line saying there is nothing to show yet. */
const TableSection: FC<{ id: string; title: string; empty: string; headers: string[]; rows: unknown[] }> = ({ id, title, empty, headers, rows }) => (
  <section id={id}>
    <h2>{title}</h2>
    {rows.length === 0 ? <p class="empty">{empty}</p> : <Table headers={headers}>{rows}</Table>}
  </section>
);

const Page: FC<{ data: DashboardData }> = ({ data }) => {
  const now = Date.parse(data.generatedAt);
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width,initial-scale=1" />
        <meta http-equiv="refresh" content="5" />
        <link rel="icon" href="data:," />
        <title>Shoal edge</title>
        <style>{STYLE}</style>
      </head>
      <body>
        <h1>Shoal edge</h1>
        <div class="sub">
          {data.repositories.length} repositories{data.moreRepositories ? "+" : ""} · {data.swarms.length} live swarms · updated {data.generatedAt}
        </div>
        <section id="throughput">
          <h2>Throughput</h2>
          {raw(renderRatePlot(data.throughput, [{ name: "served", label: "blob bytes served (R2 reads: web seed and pulls)", color: "#e8912d" }], "blob bytes the edge served per second"))}
        </section>
        <TableSection
          id="repositories"
          title="Repositories"
          empty="Nothing pushed yet."
          headers={["repository", "tags"]}
          rows={data.repositories.map((r) => (
                <tr data-repository={r.name}>
                  <td>
                    <code>{r.name}</code>
                  </td>
                  <td>
                    {r.tags.map((t) => (
                      <span class="tag" data-tag={t}>
                        {t}
                        {r.pulls[t] ? <span class="pulls"> · {r.pulls[t]} {r.pulls[t] === 1 ? "pull" : "pulls"}</span> : ""}
                      </span>
                    ))}
                    {r.moreTags ? "…" : ""}
                  </td>
                </tr>
              ))}
        />
        <TableSection
          id="pushes"
          title="Recent pushes"
          empty="No tag pushed yet."
          headers={["when", "repository:tag", "digest", "image size", "pulls"]}
          rows={data.pushes.map((p) => (
                <tr>
                  <td>{ago(p.at, now)}</td>
                  <td>
                    <code>
                      {p.repository}:{p.tag}
                    </code>
                  </td>
                  <td>
                    <code title={p.digest}>{short(p.digest)}</code>
                  </td>
                  <td class="num size" title={`manifest ${formatBytes(p.size)}`}>
                    {p.imageBytes === undefined ? `manifest ${formatBytes(p.size)}` : formatBytes(p.imageBytes)}
                  </td>
                  <td class="num pulls-count">{p.pulls ?? 0}</td>
                </tr>
              ))}
        />
        <TableSection
          id="swarms"
          title="Live swarms"
          empty="No agent is fetching or seeding right now."
          headers={["image · blob", "size", "peers", "seeders", "reported"]}
          rows={data.swarms.map((s) => (
                <tr data-swarm={s.digest}>
                  <td>
                    {s.image ? (
                      <>
                        <span class="image">{s.image}</span>
                        <span class="part">{s.part}</span>{" "}
                      </>
                    ) : null}
                    <code title={s.digest}>{short(s.digest)}</code>
                  </td>
                  <td class="num size">{s.size === undefined ? "" : formatBytes(s.size)}</td>
                  <td class="num peers">{s.peers}</td>
                  <td class="num seeders">{s.seeders}</td>
                  <td>{ago(s.updatedAt, now)}</td>
                </tr>
              ))}
        />
        {data.replication ? (
          <section id="replication">
            <h2>Replication</h2>
            <div class="sub">
              {data.replication.targets.map((t) => `${t.prefix} → ${t.url}`).join(" · ")} — {data.replication.pending} pending ({data.replication.failing} failing), {data.replication.done} done
            </div>
            <Table headers={["repository:tag", "state", "attempts", "last error"]}>
              {data.replication.jobs.map((j) => (
                <tr>
                  <td>
                    <code>
                      {j.repository}:{j.tag}
                    </code>
                  </td>
                  <td>{j.state}</td>
                  <td class="num">{j.attempts}</td>
                  <td class={j.lastError ? "bad" : ""}>{j.lastError ?? ""}</td>
                </tr>
              ))}
            </Table>
          </section>
        ) : null}
        <TableSection
          id="gc"
          title="Storage and garbage collection"
          empty="No collection has run yet (a cron trigger runs one daily; shoal gc --edge URL runs one now)."
          headers={["run", "when", "stored", "unreachable", "freed", "manifests dropped", "took"]}
          rows={data.gc.map((r) => (
            <tr data-gc-run={r.id}>
              <td>
                {r.id}
                {r.dryRun ? " (dry)" : ""}
                {r.finishedAt === undefined ? ` (${r.phase})` : ""}
              </td>
              <td>{ago(r.startedAt, now)}</td>
              <td class="num">{formatBytes(r.counters.bytes)}</td>
              <td class="num">{formatBytes(r.counters.garbageBytes)}</td>
              <td class="num freed">{formatBytes(r.counters.freedBytes)}</td>
              <td class="num">{r.counters.manifestsDropped}</td>
              <td class="num">{r.finishedAt === undefined ? "" : `${((r.finishedAt - r.startedAt) / 1000).toFixed(1)} s`}</td>
            </tr>
          ))}
        />
      </body>
    </html>
  );
};
