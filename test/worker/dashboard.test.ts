import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestEdge, type TestEdge } from "../helpers/edge.js";
import { pushImage } from "../helpers/registry-client.js";
import type { DashboardData } from "../../src/worker/dashboard/data.js";

let edge: TestEdge;
beforeAll(async () => {
  edge = await startTestEdge();
});
afterAll(async () => edge?.destroy());

const dashboard = async () => (await (await fetch(`${edge.url}/dashboard.json`)).json()) as DashboardData;
const announce = (body: Record<string, unknown>) =>
  fetch(`${edge.url}/shoal/v1/announce`, { method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json" } });
const peer = (digest: string, id: string, complete: boolean) => ({
  digest,
  peerId: id.repeat(40),
  ip: "127.0.0.1",
  port: 16001,
  zone: "local",
  cluster: "dev",
  complete,
  have: complete ? 4 : 0,
  pieceCount: 4,
});

describe("edge dashboard", () => {
  it("is empty, and says so, before anything is pushed", async () => {
    const data = await dashboard();
    expect(data).toMatchObject({ repositories: [], pushes: [], swarms: [] });
    const html = await (await fetch(`${edge.url}/dashboard`)).text();
    expect(html).toContain("Nothing pushed yet.");
  });

  it("lists repositories with their tags and the latest pushes first", async () => {
    const first = await pushImage(edge.url, "dash/app", "v1", ["one"]);
    const second = await pushImage(edge.url, "dash/app", "v2", ["two"]);
    await pushImage(edge.url, "dash/other", "latest", ["three"]);
    const data = await dashboard();
    expect(data.repositories).toEqual([
      { name: "dash/app", tags: ["v1", "v2"], moreTags: false, pulls: {} },
      { name: "dash/other", tags: ["latest"], moreTags: false, pulls: {} },
    ]);
    expect(data.pushes.map((p) => `${p.repository}:${p.tag}`)).toEqual(["dash/other:latest", "dash/app:v2", "dash/app:v1"]);
    expect(data.pushes[1]).toMatchObject({ digest: second.digest, size: Buffer.byteLength(second.text) });
    expect(data.pushes[2]!.digest).toBe(first.digest);
    const html = await (await fetch(`${edge.url}/dashboard`)).text();
    expect(html).toContain(`title="${second.digest}"`);
  });

  it("shows live swarms with their peer and seeder counts, and drops a swarm once its peers leave", async () => {
    const digest = `sha256:${"d".repeat(64)}`;
    expect((await announce(peer(digest, "1", true))).status).toBe(200);
    expect((await announce(peer(digest, "2", false))).status).toBe(200);
    // The tracker reports a change at once, then at most every few seconds.
    let swarm: DashboardData["swarms"][number] | undefined;
    for (let i = 0; i < 60 && swarm?.peers !== 2; i++) {
      swarm = (await dashboard()).swarms.find((s) => s.digest === digest);
      if (swarm?.peers !== 2) await new Promise((r) => setTimeout(r, 250));
    }
    expect(swarm).toMatchObject({ digest, peers: 2, seeders: 1 });
    expect((await announce({ ...peer(digest, "1", true), stopped: true })).status).toBe(200);
    expect((await announce({ ...peer(digest, "2", false), stopped: true })).status).toBe(200);
    let gone = false;
    for (let i = 0; i < 60 && !gone; i++) {
      gone = !(await dashboard()).swarms.some((s) => s.digest === digest);
      if (!gone) await new Promise((r) => setTimeout(r, 250));
    }
    expect(gone).toBe(true);
  });

  it("reports a leecher turned seeder within a few seconds, with no announce after it (the count held back is sent)", async () => {
    const digest = `sha256:${"e".repeat(64)}`;
    const seen = async (want: { peers: number; seeders: number }) => {
      for (let i = 0; i < 80; i++) {
        const swarm = (await dashboard()).swarms.find((s) => s.digest === digest);
        if (swarm?.peers === want.peers && swarm.seeders === want.seeders) return true;
        await new Promise((r) => setTimeout(r, 200));
      }
      return false;
    };
    expect((await announce(peer(digest, "3", false))).status).toBe(200);
    expect(await seen({ peers: 1, seeders: 0 })).toBe(true);
    // Done within the report interval: the change waits for the tracker's alarm (twice over), a
    // second at most in a swarm this small.
    expect((await announce(peer(digest, "3", true))).status).toBe(200);
    const completedAt = Date.now();
    expect(await seen({ peers: 1, seeders: 1 })).toBe(true);
    expect(Date.now() - completedAt).toBeLessThan(3_500);
    expect((await announce(peer(digest, "4", false))).status).toBe(200);
    expect((await announce(peer(digest, "4", true))).status).toBe(200);
    expect(await seen({ peers: 2, seeders: 2 })).toBe(true);
  }, 60_000);

  it("names a swarm by the image and layer it belongs to, counts pulls by tag, and plots the bytes served", async () => {
    const layer = "x".repeat(5000);
    const image = await pushImage(edge.url, "dash/named", "v7", ["config-less", layer]);
    const digest = image.manifest.layers[1]!.digest;
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${edge.url}/v2/dash/named/manifests/v7`, { headers: { Accept: image.manifest.mediaType } });
      expect(res.status).toBe(200);
      await res.arrayBuffer();
    }
    // By digest is not a pull of a tag; a HEAD is no pull at all.
    await (await fetch(`${edge.url}/v2/dash/named/manifests/${image.digest}`)).arrayBuffer();
    await (await fetch(`${edge.url}/v2/dash/named/manifests/v7`, { method: "HEAD" })).arrayBuffer();
    const blob = await fetch(`${edge.url}/v2/dash/named/blobs/${digest}`, { headers: { Range: "bytes=0-999" } });
    expect(blob.status).toBe(206);
    await blob.arrayBuffer();
    expect((await announce(peer(digest, "5", true))).status).toBe(200);

    let data = await dashboard();
    for (let i = 0; i < 60 && !data.swarms.some((s) => s.digest === digest); i++) {
      await new Promise((r) => setTimeout(r, 250));
      data = await dashboard();
    }
    expect(data.swarms.find((s) => s.digest === digest)).toMatchObject({ image: "dash/named:v7", part: "layer 2 of 2", size: 5000 });
    expect(data.repositories.find((r) => r.name === "dash/named")?.pulls).toEqual({ v7: 3 });
    expect(data.pushes.find((p) => p.repository === "dash/named")).toMatchObject({ pulls: 3, imageBytes: image.manifest.config.size + 11 + 5000 });
    // The bytes served land in the plot's per-second samples (a sample is plotted once its second is over).
    let served = 0;
    for (let i = 0; i < 20 && served < 1000; i++) {
      served = (await dashboard()).throughput.series.served!.reduce((a, b) => a + b, 0);
      if (served < 1000) await new Promise((r) => setTimeout(r, 250));
    }
    expect(served).toBeGreaterThanOrEqual(1000);
    const html = await (await fetch(`${edge.url}/dashboard`)).text();
    expect(html).toMatch(/<polyline class="rate" data-series="served" data-total="\d+"/);
    expect(html).toContain("dash/named:v7");
  }, 60_000);
});
