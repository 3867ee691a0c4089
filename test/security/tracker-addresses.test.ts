import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestEdge, type TestEdge } from "../helpers/edge.js";
import { AnnounceResponseSchema } from "../../src/shared/api/announce.js";

/**
 * SECURITY.md, "the tracker": announced addresses are self-declared, and agents dial what they are
 * handed. Before, a peer at 169.254.169.254 (cloud metadata), 127.0.0.1 or 0.0.0.0 was accepted and
 * handed out. Loopback is allowed only where configured (SHOAL_TRACKER_ALLOW_LOOPBACK, the devcluster).
 */
let edge: TestEdge;
beforeAll(async () => {
  edge = await startTestEdge({ SHOAL_TRACKER_ALLOW_LOOPBACK: "false" });
});
afterAll(async () => edge?.destroy());

const base = { digest: "sha256:" + "e".repeat(64), port: 16001, zone: "z", cluster: "c", complete: true, have: 4, pieceCount: 4 };
const announce = (body: Record<string, unknown>) =>
  fetch(`${edge.url}/shoal/v1/announce`, { method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json" } });

describe("the tracker never accepts nor hands out addresses that point at a host itself", () => {
  it.each(["169.254.169.254", "127.0.0.1", "0.0.0.0", "::1", "fe80::1", "::ffff:169.254.169.254", "fd00:ec2::254"])("refuses a peer at %s", async (ip) => {
    const res = await announce({ ...base, peerId: "1".repeat(40), ip });
    expect(res.status).toBe(403);
    expect(JSON.stringify(await res.json())).toMatch(/announce refused: peer address/);
  });

  it("hands out only the peers at allowed addresses", async () => {
    expect((await announce({ ...base, peerId: "2".repeat(40), ip: "10.0.0.2" })).status).toBe(200);
    const res = await announce({ ...base, peerId: "3".repeat(40), ip: "10.0.0.3", complete: false, have: 0 });
    const handout = AnnounceResponseSchema.parse(await res.json()).peers;
    expect(handout.map((p) => p.ip)).toEqual(["10.0.0.2"]);
  });
});
