import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestEdge, type TestEdge } from "../helpers/edge.js";

/**
 * SECURITY.md, "the tracker": one announcer could fill a swarm without limit (50,000 fake peers in
 * one swarm) and re-announce as fast as it liked. Now an address holds at most 256 peers in a
 * swarm object (SHOAL_TRACKER_PEERS_PER_ADDRESS) and each peer may re-announce ten times at once, then twice per minInterval.
 */
let edge: TestEdge;
beforeAll(async () => {
  // The cap is 256 by default; 16 here, so the test is quick on a loaded machine.
  edge = await startTestEdge({ SHOAL_TRACKER_PEERS_PER_ADDRESS: "16" });
});
afterAll(async () => edge?.destroy());

const base = { digest: "sha256:" + "f".repeat(64), ip: "10.0.0.9", port: 16001, zone: "z", cluster: "c", complete: true, have: 4, pieceCount: 4 };
const announce = (body: Record<string, unknown>) =>
  fetch(`${edge.url}/shoal/v1/announce`, { method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json" } }).then(async (res) => {
    await res.arrayBuffer();
    return res.status;
  });
const peerId = (n: number) => n.toString(16).padStart(40, "0");

describe("the tracker caps what one announcer may put in a swarm", () => {
  it("an address holds at most its cap of peers in a swarm", async () => {
    const statuses = await Promise.all(Array.from({ length: 16 }, (_, k) => announce({ ...base, peerId: peerId(k + 1) })));
    expect(statuses).toEqual(new Array(16).fill(200));
    const more = await Promise.all([17, 18, 19, 20].map((n) => announce({ ...base, peerId: peerId(n) })));
    expect(more).toEqual([429, 429, 429, 429]);
  });

  it("a flood of re-announces of one peer is refused", async () => {
    const flood = { ...base, digest: "sha256:" + "9".repeat(64), peerId: peerId(1) };
    expect(await announce(flood)).toBe(200);
    const started = Date.now();
    const statuses = await Promise.all(Array.from({ length: 60 }, () => announce(flood)));
    // 10 at once, then 2 a second (minInterval is 1 s in a small swarm).
    const allowed = 10 + 2 * Math.ceil((Date.now() - started) / 1000);
    expect(statuses.filter((s) => s === 200).length).toBeLessThanOrEqual(allowed);
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(60 - allowed);
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThan(0);
  });
});
