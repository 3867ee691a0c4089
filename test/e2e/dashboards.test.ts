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
    const row = page.locator(`#swarms tr[data-swarm="${layers[0]}"]`);
    await expect.poll(async () => ((await row.count()) ? await row.locator(".peers").innerText() : ""), { timeout: 30_000, interval: 500 }).toBe("2");
    await page.screenshot({ path: path.join(scratch, "edge.png"), fullPage: true });
    if (process.env.SHOAL_SCREENSHOTS) await page.screenshot({ path: path.join(process.env.SHOAL_SCREENSHOTS, "edge-dashboard.png"), fullPage: true });
    await page.close();
  });
});

describe("agent dashboard in Chromium", () => {
  it("shows the store, bytes by source and the blobs it seeds", async () => {
    const first = await open(`${cluster.agents[0]!.admin}/`);
    expect(await first.title()).toBe("Shoal agent");
    expect(await text(first, "#from-edge")).toMatch(/^3\.0 MiB$/);
    expect(await text(first, "#store-bytes")).toMatch(/MiB$/);
    for (const layer of layers) expect(await text(first, `#swarms tr[data-swarm="${layer}"]`)).toMatch(/seeder/);
    await first.close();

    const second = await open(`${cluster.agents[1]!.admin}/`);
    const status = (await (await fetch(`${cluster.agents[1]!.admin}/v1/status`)).json()) as { bytesBySource: Record<string, number> };
    const fromPeers = status.bytesBySource.peer ?? 0;
    expect(fromPeers + (status.bytesBySource.origin ?? 0)).toBeGreaterThanOrEqual(3 * 1024 * 1024);
    expect(fromPeers).toBeGreaterThan(0);
    expect(await text(second, "#sources")).toMatch(/from peers \d/);
    if (process.env.SHOAL_SCREENSHOTS) await second.screenshot({ path: path.join(process.env.SHOAL_SCREENSHOTS, "agent-dashboard.png"), fullPage: true });
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
        swarms: [{ digest: `sha256:${"a".repeat(64)}`, role: hostile }],
      }),
    );
    expect(await page.locator("img, script").count()).toBe(0);
    expect(await text(page, ".sub")).toContain(`zone ${hostile}`);
    await page.waitForTimeout(200);
    await page.close();
  });
});

describe("dashboards", () => {
  it("log no errors in the browser console", () => {
    expect(problems).toEqual([]);
  });
});
