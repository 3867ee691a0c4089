import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestEdge, type TestEdge } from "../helpers/edge.js";
import { AnnounceResponseSchema, type AnnounceResponse } from "../../src/shared/api/announce.js";
import { shardOf } from "../../src/worker/tracker/shard-router.js";

/**
 * A swarm spread over several tracker objects, through the edge (the Worker and its Durable
 * Objects, or the Deno edge): peers of one account land in different shards by peer id, and still
 * meet, because the shards trade summaries through shard 0.
 */
const TOKEN = "fleet:fleet-token-0123456789";
const SHARDS = 8;
let edge: TestEdge;
beforeAll(async () => {
  edge = await startTestEdge({ SHOAL_PUSH_TOKENS: TOKEN, SHOAL_TRACKER_SHARDS: String(SHARDS) });
});
afterAll(async () => edge?.destroy());

const DIGEST = "sha256:" + "5".repeat(64);
const announce = async (peerId: string, extra: Record<string, unknown> = {}): Promise<AnnounceResponse> => {
  const res = await fetch(`${edge.url}/shoal/v1/announce`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Basic ${Buffer.from(TOKEN).toString("base64")}` },
    body: JSON.stringify({ digest: DIGEST, peerId, ip: "127.0.0.1", port: 16001, zone: "z", cluster: "c", complete: false, have: 0, pieceCount: 64, ...extra }),
  });
  expect(res.status).toBe(200);
  return AnnounceResponseSchema.parse(await res.json());
};
/** Peer ids that the edge routes to `count` different shards. */
const idsInDistinctShards = (count: number): string[] => {
  const byShard = new Map<number, string>();
  for (let n = 1; byShard.size < count; n++) {
    const id = n.toString(16).padStart(40, "0");
    const shard = shardOf(id, "account:fleet", SHARDS);
    if (!byShard.has(shard)) byShard.set(shard, id);
  }
  return [...byShard.values()];
};

describe("tracker sharded over several objects", () => {
  it("hands a leecher a seeder that announced to another shard", async () => {
    const [seeder, leecher] = idsInDistinctShards(2);
    await announce(seeder!, { complete: true, have: 64, port: 16101 });
    // The seeder's shard tells the hub after answering: ask again until the leecher's shard has heard.
    let peers: string[] = [];
    for (let attempt = 0; attempt < 8 && !peers.includes(seeder!); attempt++) {
      if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, 500));
      peers = (await announce(leecher!)).peers.map((p) => p.peerId);
    }
    expect(peers).toContain(seeder);
  });

  it("tiles the web-seed ring with the leechers of several shards", async () => {
    const ids = idsInDistinctShards(4);
    const ownersOf = async () => {
      const owners = new Array<number>(64).fill(0);
      for (const id of ids) {
        const { webSeedStartPiece: start, webSeedSlicePieces: slice } = await announce(id, { digest: "sha256:" + "6".repeat(64) });
        for (let k = 0; k < slice!; k++) owners[(start + k) % 64]!++;
      }
      return owners;
    };
    // Until every shard has heard of the others, arcs may overlap (never leave a piece unowned).
    let owners = await ownersOf();
    for (let attempt = 0; attempt < 6 && owners.some((o) => o !== 1); attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 1_100));
      owners = await ownersOf();
    }
    expect(owners).toEqual(new Array(64).fill(1));
  });
});
