import { afterAll, describe, expect, it } from "vitest";
import { Agent, fetch as undiciFetch } from "undici";
import { startTestEdge, type TestEdge } from "../helpers/edge.js";
import { AnnounceResponseSchema } from "../../src/shared/api/announce.js";

/**
 * SECURITY.md, "the tracker": a peer id belongs to the identity that first announced it (the
 * account, else the source address). Before, anyone could announce a real seeder's peer id with
 * `stopped: true` and remove it from every handout, or move it to an address of their own.
 */
const edges: TestEdge[] = [];
afterAll(async () => {
  for (const edge of edges) await edge.destroy();
});

const ALICE = "alice:alice-token-0123456789";
const MALLORY = "mallory:mallory-token-0123456789";
const basic = (secret: string) => `Basic ${Buffer.from(secret).toString("base64")}`;
const base = { digest: "sha256:" + "d".repeat(64), port: 16001, zone: "z", cluster: "c", have: 0, pieceCount: 8 };
const seeder = { ...base, peerId: "a".repeat(40), ip: "10.0.0.1", complete: true, have: 8 };

function announcer(edge: TestEdge, options: { source?: string; authorization?: string; headers?: Record<string, string> } = {}) {
  const dispatcher = new Agent({ localAddress: options.source ?? "127.0.0.1" });
  return async (body: Record<string, unknown>) => {
    const res = await undiciFetch(`${edge.url}/shoal/v1/announce`, {
      method: "POST",
      body: JSON.stringify(body),
      headers: { "Content-Type": "application/json", ...(options.authorization ? { Authorization: options.authorization } : {}), ...options.headers },
      dispatcher,
    });
    return { status: res.status, body: (await res.json()) as unknown };
  };
}

const handoutOf = (body: unknown) => AnnounceResponseSchema.parse(body).peers;

/**
 * Announces until the handout passes `check` (a few tries, half a second apart): a swarm is spread
 * over several tracker objects, and one learns of a change in another at its next trade with the hub.
 */
async function eventually(announce: () => Promise<{ body: unknown }>, check: (peers: string[]) => boolean): Promise<string[]> {
  let peers: string[] = [];
  for (let attempt = 0; attempt < 8; attempt++) {
    if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, 500));
    peers = handoutOf((await announce()).body).map((p) => p.peerId);
    if (check(peers)) break;
  }
  return peers;
}

describe("the tracker binds a peer id to whoever first announced it", () => {
  it("with accounts: another account can neither stop a seeder nor move it", async () => {
    const edge = await startTestEdge({ SHOAL_PUSH_TOKENS: `${ALICE},${MALLORY}` });
    edges.push(edge);
    const alice = announcer(edge, { authorization: basic(ALICE) });
    const mallory = announcer(edge, { authorization: basic(MALLORY) });
    expect((await alice(seeder)).status).toBe(200);

    const stop = await mallory({ ...seeder, stopped: true });
    expect(stop.status).toBe(403);
    expect(JSON.stringify(stop.body)).toMatch(/another announcer/);
    expect((await mallory({ ...seeder, ip: "10.6.6.6" })).status).toBe(403);

    const leecher = await alice({ ...base, peerId: "b".repeat(40), ip: "10.0.0.2", complete: false });
    expect(handoutOf(leecher.body)).toEqual([expect.objectContaining({ peerId: seeder.peerId, ip: "10.0.0.1", complete: true })]);
    // Its owner still may stop it.
    expect((await alice({ ...seeder, stopped: true })).status).toBe(200);
    expect(await eventually(() => alice({ ...base, peerId: "b".repeat(40), ip: "10.0.0.2", complete: false }), (peers) => peers.length === 0)).toEqual([]);
  });

  it("without accounts: by source address, which a client cannot claim with a header", async () => {
    const edge = await startTestEdge();
    edges.push(edge);
    const owner = announcer(edge, { source: "127.0.0.1" });
    const other = announcer(edge, { source: "127.0.0.2", headers: { "CF-Connecting-IP": "127.0.0.1", "X-Forwarded-For": "127.0.0.1" } });
    expect((await owner(seeder)).status).toBe(200);
    // Refused where the seeder is held; an address's announces go to its own shard of the swarm
    // (shard-router.ts), where a stop of a peer id it never announced changes nothing either.
    expect([403, 200]).toContain((await other({ ...seeder, stopped: true })).status);
    expect(await eventually(() => owner({ ...base, peerId: "e".repeat(40), ip: "10.0.0.5", complete: false }), (peers) => peers.includes(seeder.peerId))).toEqual([seeder.peerId]);
    const leecher = () => other({ ...base, peerId: "c".repeat(40), ip: "10.0.0.3", complete: false });
    expect((await leecher()).status).toBe(200);
    expect(await eventually(leecher, (peers) => peers.includes(seeder.peerId))).toContain(seeder.peerId);
  });
});
