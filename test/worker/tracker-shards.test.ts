import { describe, expect, it } from "vitest";
import { ShardedSwarm } from "../../src/worker/tracker/sharded-swarm.js";
import { shardOf, trackerObjectName } from "../../src/worker/tracker/shard-router.js";
import { AnnounceCalendar } from "../../src/worker/tracker/calendar.js";
import type { AnnounceRequest, AnnounceResponse } from "../../src/shared/api/announce.js";

const DIGEST = "sha256:" + "a".repeat(64);
let seed = 7;
const random = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
const hex = (n: number) => Array.from({ length: 40 }, (_, k) => "0123456789abcdef"[(Math.imul(n + 1, 2654435761) >>> (k % 28)) & 15]).join("");
const peer = (n: number, extra: Partial<AnnounceRequest> = {}): AnnounceRequest => ({
  digest: DIGEST,
  peerId: n.toString(16).padStart(8, "0") + hex(n).slice(8),
  ip: `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`,
  port: 16001,
  zone: `z${n % 4}`,
  cluster: "c1",
  complete: false,
  have: 0,
  pieceCount: 256,
  ...extra,
});

let clock = 0;
const sharded = (count: number, webSeedReaders?: number) => new ShardedSwarm(count, { now: () => clock, random, baseIntervalSeconds: 3, maxHandout: 30, webSeedReaders });
const ok = (s: ShardedSwarm, request: AnnounceRequest, identity = "account:fleet"): AnnounceResponse & { shard: number } => {
  const outcome = s.announce(request, identity);
  if (!outcome.ok) throw new Error(`${outcome.status} ${outcome.reason}`);
  return { ...outcome.response, shard: outcome.shard };
};

/** Every peer announces once, then a second passes (the shards trade with the hub as they go). */
const round = (s: ShardedSwarm, peers: number, extra: Partial<AnnounceRequest> = {}) => {
  for (let n = 0; n < peers; n++) ok(s, peer(n, extra));
  clock += 1_000;
};

describe("shard router", () => {
  it("spreads a fleet's peer ids evenly over the shards, and keeps an address's peers in one", () => {
    const counts = new Array<number>(32).fill(0);
    for (let n = 0; n < 20_000; n++) counts[shardOf(peer(n).peerId, "account:fleet", 32)]!++;
    for (const c of counts) expect(Math.abs(c - 625)).toBeLessThan(625 * 0.2);
    const shards = new Set(Array.from({ length: 100 }, (_, n) => shardOf(peer(n).peerId, "address:10.0.0.1", 32)));
    expect(shards.size).toBe(1);
    expect(shardOf(peer(1).peerId, "account:fleet", 1)).toBe(0);
  });

  it("names one shard as the digest (as before sharding), and each of several apart", () => {
    expect(trackerObjectName(DIGEST, 0, 1)).toBe(DIGEST);
    expect(new Set(Array.from({ length: 8 }, (_, i) => trackerObjectName(DIGEST, i, 8))).size).toBe(8);
  });
});

describe("a swarm sharded over several tracker objects", () => {
  it("hands a leecher the seeders and peers of other shards", () => {
    clock = 0;
    const s = sharded(8);
    ok(s, peer(1, { complete: true, have: 256 }));
    const seederShard = s.shardOf(peer(1), "account:fleet");
    let n = 2;
    while (s.shardOf(peer(n), "account:fleet") === seederShard) n++;
    clock += 1_000;
    const answer = ok(s, peer(n));
    expect(answer.shard).not.toBe(seederShard);
    expect(answer.peers.map((p) => p.peerId)).toContain(peer(1).peerId);
  });

  it("keeps a fifth of a big shard's handout for peers of other shards", () => {
    clock = 0;
    const s = sharded(4);
    for (let r = 0; r < 3; r++) round(s, 2_000);
    const answer = ok(s, peer(0));
    const own = answer.shard;
    const others = answer.peers.filter((p) => s.shardOf({ ...peer(0), peerId: p.peerId }, "account:fleet") !== own);
    expect(answer.peers).toHaveLength(30);
    expect(others.length).toBe(6);
  });

  it.each([
    [4, 40, 256],
    [8, 300, 256],
    [32, 100, 64],
  ])("tiles the web-seed ring with the leechers of %i shards (%i leechers, %i pieces)", (count, leechers, pieces) => {
    clock = 0;
    // Every leecher a reader (no cap on readers): the arcs alone are tested here.
    const s = sharded(count, 1 << 16);
    // Once every shard has traded with the hub since the last join, the slices tile the ring.
    for (let r = 0; r < 3; r++) round(s, leechers, { pieceCount: pieces });
    const owners = new Array<number>(pieces).fill(0);
    for (let n = 0; n < leechers; n++) {
      const { webSeedStartPiece: start, webSeedSlicePieces: slice } = ok(s, peer(n, { pieceCount: pieces }));
      for (let k = 0; k < slice!; k++) owners[(start + k) % pieces]!++;
    }
    expect(owners).toEqual(new Array(pieces).fill(1));
  });

  it("shares the web-seed readers out by where the fetching leechers are: one shard holding them all gives them all", () => {
    clock = 0;
    // 400 leechers spread over 8 shards: 16 readers in all, each shard its share rounded up (at
    // first every shard gave places, knowing of no other: the extra readers give theirs back).
    const spread = sharded(8);
    for (let r = 0; r < 6; r++) round(spread, 400);
    const owners = new Array<number>(256).fill(0);
    let readers = 0;
    for (let n = 0; n < 400; n++) {
      const { webSeedStartPiece: start, webSeedSlicePieces: slice } = ok(spread, peer(n));
      if (slice! > 0) readers++;
      for (let k = 0; k < slice!; k++) owners[(start + k) % 256]!++;
    }
    expect(readers).toBeGreaterThanOrEqual(16);
    expect(readers).toBeLessThanOrEqual(16 + 8);
    expect(owners).toEqual(new Array(256).fill(1));
    // 40 leechers of one address (a devcluster): one shard, which learns it is alone, gives 16.
    clock = 0;
    const one = sharded(8);
    const local = (n: number) => peer(n, { ip: "10.9.9.9", port: 20_000 + n });
    for (let r = 0; r < 3; r++) {
      for (let n = 0; n < 40; n++) ok(one, local(n), "address:10.9.9.9");
      clock += 1_000;
    }
    let alone = 0;
    for (let n = 0; n < 40; n++) if (ok(one, local(n), "address:10.9.9.9").webSeedSlicePieces! > 0) alone++;
    expect(alone).toBe(16);
  });

  it("a shard that has heard of no other covers the whole ring rather than leave pieces without an owner", () => {
    clock = 0;
    const s = sharded(16);
    const { webSeedStartPiece, webSeedSlicePieces } = ok(s, peer(3, { pieceCount: 64 }));
    expect([webSeedStartPiece, webSeedSlicePieces]).toEqual([0, 64]);
  });

  it("forgets a shard's peers on the hub once the shard stops trading", () => {
    clock = 0;
    const s = sharded(4);
    ok(s, peer(1, { complete: true, have: 256 }));
    let n = 2;
    while (s.shardOf(peer(n), "account:fleet") === s.shardOf(peer(1), "account:fleet")) n++;
    clock += 20_000; // the seeder never announced again: its shard forgets it, and the hub its summary
    s.expire();
    clock += 1_000;
    expect(ok(s, peer(n)).peers).toEqual([]);
  });
});

describe("announce calendar", () => {
  it("books a wave of announces into seconds with room, within the window asked", () => {
    const calendar = new AnnounceCalendar(100);
    const offsets = Array.from({ length: 1_000 }, () => calendar.book(500, 3, 20));
    const perSecond = new Map<number, number>();
    for (const o of offsets) {
      expect(o).toBeGreaterThanOrEqual(3);
      expect(o).toBeLessThanOrEqual(20);
      const second = Math.ceil(500 / 1000 + o - 1e-9);
      perSecond.set(second, (perSecond.get(second) ?? 0) + 1);
    }
    expect(Math.max(...perSecond.values())).toBeLessThanOrEqual(100);
    expect(offsets.slice(0, 100).every((o) => o === 3)).toBe(true);
  });
});
