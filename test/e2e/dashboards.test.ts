import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { startDevcluster, type Devcluster } from "../helpers/devcluster.js";
import { buildImage, layoutManifest, skopeoCopy } from "../helpers/images.js";
import { renderDashboard } from "../../src/agent-node/admin/dashboard.js";

/**
 * The edge's and the agent's dashboards in a real browser (Debian's headless Chromium driven by
 * playwright-core): what a person sees after a push and two pulls, read from the rendered DOM.
 */
const CHROMIUM = process.env.SHOAL_CHROMIUM ?? "/usr/bin/chromium";

let cluster: Devcluster;
let browser: Browser;
let scratch: string;
let manifestDigest: string;
let layers: string[];
const problems: string[] = [];

beforeAll(async () => {
  scratch = await mkdtemp(path.join(os.tmpdir(), "shoal-dash-"));
  [cluster, browser] = await Promise.all([
    startDevcluster(),
    chromium.launch({
      executablePath: CHROMIUM,
      // Offline, quiet and without a sandbox (tests run as root).
      args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    }),
  ]);
  const source = await buildImage({ layers: [2 * 1024 * 1024, 1024 * 1024] });
  layers = (await layoutManifest(source.layout, source.tag)).layers.map((l) => l.digest);
  await skopeoCopy(`oci:${source.layout}:${source.tag}`, `docker://${cluster.edgeHost}/dash/web:v1`);
  manifestDigest = (await fetch(`${cluster.edgeUrl}/v2/dash/web/manifests/v1`, { method: "HEAD", headers: { Accept: "application/vnd.oci.image.manifest.v1+json" } })).headers.get("docker-content-digest")!;
  // Agent one pulls from the edge, agent two after it (from agent one where it can).
  for (const [i, agent] of cluster.agents.entries()) {
    await skopeoCopy(`docker://${agent.registryHost}/dash/web:v1`, `oci:${path.join(scratch, `pulled-${i}`)}:v1`, ["--src-tls-verify=false"]);
  }
}, 180_000);
afterAll(async () => {
  await browser?.close();
  await cluster?.stop();
  await rm(scratch, { recursive: true, force: true });
});

async function open(url: string): Promise<Page> {
  const page = await browser.newPage();
  page.on("console", (m) => void (m.type() === "error" && problems.push(`${url}: ${m.text()}`)));
  page.on("pageerror", (e) => problems.push(`${url}: ${e.message}`));
  const res = await page.goto(url);
  expect(res?.status()).toBe(200);
  return page;
}

const text = (page: Page, selector: string) => page.locator(selector).innerText();

/** Bytes per second in a plotted series (the SVG's own numbers) and how many of its points stand above the baseline. */
async function plotted(page: Page, series: string): Promise<{ total: number; raised: number }> {
  const line = page.locator(`polyline[data-series="${series}"]`);
  if ((await line.count()) !== 1) return { total: 0, raised: 0 };
  const total = Number(await line.getAttribute("data-total"));
  const baseline = Number(await page.locator("figure.plot svg line").first().getAttribute("y1"));
  const points = (await line.getAttribute("points"))!.split(" ").map((p) => Number(p.split(",")[1]));
  return { total, raised: points.filter((y) => y < baseline).length };
}

/** Screenshots at a desktop and a phone width; at the phone's nothing may make the page scroll sideways. */
async function shoot(page: Page, name: string): Promise<void> {
  for (const width of [1280, 390]) {
    await page.setViewportSize({ width, height: 900 });
    const file = `${name}-${width}.png`;
    await page.screenshot({ path: path.join(scratch, file), fullPage: true });
    if (process.env.SHOAL_SCREENSHOTS) await page.screenshot({ path: path.join(process.env.SHOAL_SCREENSHOTS, file), fullPage: true });
    const { scrollWidth, innerWidth } = (await page.evaluate("({ scrollWidth: document.scrollingElement.scrollWidth, innerWidth: window.innerWidth })")) as { scrollWidth: number; innerWidth: number };
    expect({ width, overflow: scrollWidth > innerWidth }).toEqual({ width, overflow: false });
  }
}

/** Reloads until `read` gives what `accept` wants (the pages refresh themselves every few seconds too). */
async function until<T>(page: Page, read: () => Promise<T>, accept: (value: T) => boolean, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read().catch(() => undefined);
    if (value !== undefined && accept(value)) return value;
    if (Date.now() > deadline) return value as T;
    await page.waitForTimeout(500);
    await page.reload();
  }
}

describe("edge dashboard in Chromium", () => {
  it("shows the repository with its tag, the push with its digest, and the swarms with their peers", async () => {
    const page = await open(`${cluster.edgeUrl}/dashboard`);
    expect(await page.title()).toBe("Shoal edge");
    expect(await text(page, '#repositories tr[data-repository="dash/web"]')).toMatch(/dash\/web\s+v1/);
    const push = page.locator("#pushes tr", { hasText: "dash/web:v1" });
    expect(await push.count()).toBe(1);
    expect(await push.locator("code[title]").getAttribute("title")).toBe(manifestDigest);
    // Both agents hold the layers and announce them: the trackers report two peers, both seeders
    // (a report can trail an announce by a few seconds, and the page refreshes itself).
    for (const layer of layers) {
      const row = page.locator(`#swarms tr[data-swarm="${layer}"]`);
      const counts = await until(page, async () => `${await row.locator(".peers").innerText()}/${await row.locator(".seeders").innerText()}`, (v) => v === "2/2");
      expect(counts).toBe("2/2");
    }
    // Each swarm row is named by its image and layer, with the layer's size.
    const first = page.locator(`#swarms tr[data-swarm="${layers[0]}"]`);
    expect(await first.locator(".image").innerText()).toBe("dash/web:v1");
    expect(await first.locator(".part").innerText()).toBe("layer 1 of 2");
    expect(await first.locator(".size").innerText()).toBe("2.0 MiB");
    expect(await text(page, `#swarms tr[data-swarm="${layers[1]}"] .part`)).toBe("layer 2 of 2");
    // Each agent resolved the tag at the edge once: two pulls, on the tag and on the push.
    expect(await text(page, '#repositories [data-tag="v1"] .pulls')).toMatch(/· [2-9]\d* pulls/);
    expect(Number(await push.locator(".pulls-count").innerText())).toBeGreaterThanOrEqual(2);
    expect(await push.locator(".size").innerText()).toMatch(/^3\.0 MiB$/);
    // The edge served the first agent's layers (web seed): a plotted second stands above zero.
    const served = await plotted(page, "served");
    expect(served.total).toBeGreaterThan(0);
    expect(served.raised).toBeGreaterThan(0);
    await shoot(page, "edge-dashboard");
    await page.close();
  });
});

describe("agent dashboard in Chromium", () => {
  it("shows the store, bytes by source and the blobs it seeds", async () => {
    const first = await open(`${cluster.agents[0]!.admin}/`);
    expect(await first.title()).toBe("Shoal agent");
    expect(await text(first, "#from-edge")).toMatch(/^3\.0 MiB$/);
    expect(await text(first, "#store-bytes")).toMatch(/MiB$/);
    for (const [i, layer] of layers.entries()) {
      const row = first.locator(`#swarms tr[data-swarm="${layer}"]`);
      expect(await row.innerText()).toMatch(/seeder/);
      expect(await row.locator(".image").innerText()).toBe("dash/web:v1");
      expect(await row.locator(".part").innerText()).toBe(`layer ${i + 1} of 2`);
      expect(await row.locator(".size").innerText()).toBe(i === 0 ? "2.0 MiB" : "1.0 MiB");
      // The tracker hands agent one the other agent (at the announce after agent two joined).
      expect(await until(first, () => row.locator(".peers").innerText(), (v) => v === "1")).toBe("1");
    }
    // All from the edge: the bar is the edge's colour, and the legend says which colour is which.
    expect(await first.locator("#sources .key").allInnerTexts()).toEqual([expect.stringMatching(/^from peers 0 B$/), expect.stringMatching(/^from the edge 3\.0 MiB$/), expect.stringMatching(/^sent to peers \d/)]);
    expect(await first.locator("#sources .bar > div").evaluateAll((bars) => bars.map((b) => (b as unknown as { style: { width: string } }).style.width))).toEqual(["0%", "100%"]);
    // Agent two fetched from agent one: bytes sent to peers, on the page and in the plot.
    expect(await text(first, "#to-peers")).not.toBe("0 B");
    expect(await text(first, '#pulls tr[data-image="dash/web:v1"] .pulls')).toBe("1");
    const edgeBytes = await plotted(first, "origin");
    expect(edgeBytes.total).toBeGreaterThanOrEqual(3 * 1024 * 1024);
    expect(edgeBytes.raised).toBeGreaterThan(0);
    expect((await plotted(first, "uploaded")).total).toBeGreaterThan(0);
    await shoot(first, "agent-one-dashboard");
    await first.close();

    const second = await open(`${cluster.agents[1]!.admin}/`);
    const status = (await (await fetch(`${cluster.agents[1]!.admin}/v1/status`)).json()) as { bytesBySource: Record<string, number> };
    const fromPeers = status.bytesBySource.peer ?? 0;
    expect(fromPeers + (status.bytesBySource.origin ?? 0)).toBeGreaterThanOrEqual(3 * 1024 * 1024);
    expect(fromPeers).toBeGreaterThan(0);
    expect(await text(second, "#sources")).toMatch(/from peers \d/);
    const fromPeersPlot = await plotted(second, "peer");
    expect(fromPeersPlot.total).toBe(fromPeers);
    expect(fromPeersPlot.raised).toBeGreaterThan(0);
    for (const layer of layers) expect(await text(second, `#swarms tr[data-swarm="${layer}"] .image`)).toBe("dash/web:v1");
    await shoot(second, "agent-two-dashboard");
    await second.close();
  });

  it("renders hostile text as text: nothing from the status runs as markup", async () => {
    const page = await browser.newPage();
    page.on("pageerror", (e) => problems.push(`hostile: ${e.message}`));
    await page.exposeFunction("pwned", () => problems.push("a script from the status ran"));
    const hostile = `<img src=x onerror="pwned()"><script>pwned()</script>"'`;
    await page.setContent(
      renderDashboard({
        uptimeSeconds: 1,
        edge: hostile,
        zone: hostile,
        cluster: hostile,
        peerId: "ab".repeat(20),
        store: { bytes: 0, capacityBytes: 1, blobs: 0, pinned: 0 },
        bytesBySource: {},
        downloads: [{ digest: hostile, written: 0, state: hostile }],
        swarms: [{ digest: `sha256:${"a".repeat(64)}`, role: hostile, image: hostile, part: hostile, size: 1 }],
        pulls: [{ image: hostile, count: 1 }],
        throughput: { startSecond: 0, series: { peer: [0, 1], origin: [1, 0], uploaded: [0, 0] } },
      }),
    );
    expect(await page.locator("img, script").count()).toBe(0);
    expect(await text(page, ".sub")).toContain(`zone ${hostile}`);
    expect(await text(page, "#swarms .image")).toBe(hostile);
    expect(await text(page, "#pulls code")).toBe(hostile);
    await page.waitForTimeout(200);
    await page.close();
  });
});

describe("dashboards", () => {
  it("log no errors in the browser console", () => {
    expect(problems).toEqual([]);
  });
});
