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
      { name: "dash/app", tags: ["v1", "v2"], moreTags: false },
      { name: "dash/other", tags: ["latest"], moreTags: false },
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
});
