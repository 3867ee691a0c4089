import { describe, expect, it } from "vitest";
import { Swarm, ringPosition, type SwarmOptions } from "../../src/worker/tracker/swarm.js";
import type { AnnounceRequest, AnnounceResponse } from "../../src/shared/api/announce.js";

const DIGEST = "sha256:" + "a".repeat(64);
let clock = 0;
/** A swarm whose `announce` answers (each peer its own identity, its address) or throws the refusal. */
const swarm = (options: Partial<SwarmOptions> = {}) => {
  const s = new Swarm({ now: () => clock, baseIntervalSeconds: 3, maxHandout: 4, ...options });
  return Object.assign(s, {
    ok(request: AnnounceRequest, identity = `address:${request.ip}`): AnnounceResponse {
      const outcome = s.announce(request, identity);
      if (!outcome.ok) throw new Error(`${outcome.status} ${outcome.reason}`);
      return outcome.response;
    },
  });
};
const id = (n: number) => n.toString(16).padStart(40, "0");
const peer = (n: number, extra: Partial<AnnounceRequest> = {}): AnnounceRequest => ({
  digest: DIGEST,
  peerId: id(n),
  ip: "10.0.0." + n,
  port: 16001,
  zone: "z1",
  cluster: "c1",
  complete: false,
  have: 0,
  pieceCount: 100,
  ...extra,
});

describe("Swarm", () => {
  it("never hands a peer itself, and hands out at most the bound", () => {
    clock = 0;
    const s = swarm();
    for (let i = 1; i <= 10; i++) s.ok(peer(i));
    const answer = s.ok(peer(1));
    expect(answer.peers).toHaveLength(4);
    expect(answer.peers.map((p) => p.peerId)).not.toContain(id(1));
    expect(answer.interval).toBe(3);
  });

  it("orders seeders first, then the same zone and cluster, then the same cluster, then others", () => {
    clock = 0;
    const s = swarm({ maxHandout: 10 });
    s.ok(peer(2, { zone: "z2", cluster: "c2" }));
    s.ok(peer(3, { zone: "z2" }));
    s.ok(peer(4));
    s.ok(peer(5, { complete: true, zone: "z9", cluster: "c9", have: 100 }));
    const order = s.ok(peer(1)).peers.map((p) => p.peerId);
    expect(order).toEqual([id(5), id(4), id(3), id(2)]);
  });

  it("shuffles within a rank", () => {
    clock = 0;
    const s = swarm();
    for (let i = 2; i <= 30; i++) s.ok(peer(i));
    const firsts = new Set(Array.from({ length: 20 }, (_, k) => s.ok(peer(31 + k)).peers[0]!.peerId));
    expect(firsts.size).toBeGreaterThan(3);
  });

  it("forgets peers that stop announcing, and peers that say stopped", () => {
    clock = 0;
    const s = swarm();
    s.ok(peer(1));
    s.ok(peer(2));
    expect(s.nextExpiry()).toBe(10_000);
    clock = 6_000;
    s.ok(peer(2));
    clock = 10_001;
    expect(s.expire()).toBe(1);
    expect(s.ok(peer(3)).peers.map((p) => p.peerId)).toEqual([id(2)]);
    s.ok(peer(2, { stopped: true }));
    expect(s.ok(peer(3)).peers).toEqual([]);
  });

  it("gives each newcomer a different web-seed start, spread over the pieces", () => {
    clock = 0;
    const s = swarm();
    const starts = Array.from({ length: 16 }, (_, i) => s.ok(peer(i + 1, { pieceCount: 64 })).webSeedStartPiece);
    expect(new Set(starts).size).toBe(16);
    expect(Math.max(...starts)).toBeLessThan(64);
    // A re-announce keeps its start.
    expect(s.ok(peer(5, { pieceCount: 64 })).webSeedStartPiece).toBe(starts[4]);
  });

  it.each([
    [4, 4],
    [16, 16],
    [16, 64],
    [8, 13],
  ])("%i peers on %i pieces: starts split the ring into near-equal arcs", (peers, pieces) => {
    clock = 0;
    const s = swarm();
    const starts = Array.from({ length: peers }, (_, i) => s.ok(peer(i + 1, { pieceCount: pieces })).webSeedStartPiece).sort((a, b) => a - b);
    expect(new Set(starts).size).toBe(peers);
    const arcs = starts.map((start, i) => (i + 1 < starts.length ? starts[i + 1]! : starts[0]! + pieces) - start);
    expect(Math.max(...arcs)).toBeLessThanOrEqual(Math.ceil((2 * pieces) / peers));
  });

  it.each([
    [1, 16],
    [3, 16],
    [4, 16],
    [7, 13],
    [16, 16],
    [24, 16],
    [5, 1],
  ])("%i leechers on %i pieces: web-seed slices give every piece exactly one owner", (leechers, pieces) => {
    clock = 0;
    const s = swarm();
    s.ok(peer(100, { pieceCount: pieces, complete: true, have: pieces })); // a seeder owns nothing
    for (let i = 1; i <= leechers; i++) s.ok(peer(i, { pieceCount: pieces }));
    const owners = new Array<number>(pieces).fill(0);
    for (let i = 1; i <= leechers; i++) {
      // Re-announced once everyone is in: the slices as they settle.
      const { webSeedStartPiece: start, webSeedSlicePieces: slice } = s.ok(peer(i, { pieceCount: pieces }));
      for (let k = 0; k < slice!; k++) owners[(start + k) % pieces]!++;
    }
    expect(owners).toEqual(new Array(pieces).fill(1));
    expect(s.ok(peer(100, { pieceCount: pieces, complete: true, have: pieces })).webSeedSlicePieces).toBe(0);
  });

  it("hands a departed leecher's slice to the one before it on the ring", () => {
    clock = 0;
    const s = swarm();
    for (let i = 1; i <= 4; i++) s.ok(peer(i, { pieceCount: 16 }));
    expect(s.ok(peer(1, { pieceCount: 16 })).webSeedSlicePieces).toBe(4); // starts 0, 8, 4, 12
    s.ok(peer(3, { pieceCount: 16, stopped: true }));
    expect(s.ok(peer(1, { pieceCount: 16 })).webSeedSlicePieces).toBe(8);
    // A leecher that completes gives its slice up too.
    s.ok(peer(2, { pieceCount: 16, complete: true, have: 16 }));
    expect(s.ok(peer(4, { pieceCount: 16 })).webSeedSlicePieces).toBe(4);
    expect(s.ok(peer(1, { pieceCount: 16 })).webSeedSlicePieces).toBe(12);
  });
});

  it("gives a peer that fetches only for its readers (fetching: false) no slice, and hands it out for its pieces", () => {
    clock = 0;
    const s = swarm({ maxHandout: 10 });
    // A lazy copy (two pieces held) joins first: it must not take the ring from the fetchers.
    expect(s.ok(peer(9, { pieceCount: 16, have: 2, fetching: false })).webSeedSlicePieces).toBe(0);
    s.ok(peer(1, { pieceCount: 16 }));
    s.ok(peer(2, { pieceCount: 16 }));
    const owners = new Array<number>(16).fill(0);
    for (const n of [1, 2]) {
      const { webSeedStartPiece: start, webSeedSlicePieces: slice } = s.ok(peer(n, { pieceCount: 16 }));
      for (let k = 0; k < slice!; k++) owners[(start + k) % 16]!++;
    }
    expect(owners).toEqual(new Array(16).fill(1));
    const handed = s.ok(peer(1, { pieceCount: 16 })).peers.find((p) => p.peerId === id(9));
    expect(handed).toMatchObject({ complete: false, have: 2 });
    expect(s.snapshot()).toEqual({ peers: 3, seeders: 0 });
    // A whole read on the lazy copy: it now fetches the whole blob and gets its share of the ring.
    expect(s.ok(peer(9, { pieceCount: 16, have: 2 })).webSeedSlicePieces).toBeGreaterThan(0);
    expect(s.ok(peer(9, { pieceCount: 16, have: 2, fetching: false })).webSeedSlicePieces).toBe(0);
    expect(s.summary(true)).toMatchObject({ peers: 3, leechers: 2, holders: 1 });
  });

describe("ringPosition", () => {
  it("is the van der Corput sequence", () => {
    expect([0, 1, 2, 3, 4, 5, 6, 7].map(ringPosition)).toEqual([0, 0.5, 0.25, 0.75, 0.125, 0.625, 0.375, 0.875]);
  });
});

describe("Swarm: whom it believes", () => {
  it("binds a peer id to the identity that first announced it: no other may update or stop it", () => {
    clock = 0;
    const s = swarm();
    s.ok(peer(1, { complete: true, have: 100 }), "account:alice");
    const stop = s.announce(peer(1, { stopped: true }), "account:mallory");
    expect(stop).toMatchObject({ ok: false, status: 403 });
    const hijack = s.announce(peer(1, { ip: "10.9.9.9", complete: true, have: 100 }), "address:10.9.9.9");
    expect(hijack).toMatchObject({ ok: false, status: 403 });
    expect(s.ok(peer(2)).peers).toEqual([expect.objectContaining({ peerId: id(1), ip: "10.0.0.1", complete: true })]);
    // Its owner may move it and stop it; once forgotten, the id is free again.
    s.ok(peer(1, { ip: "10.0.0.77", complete: true, have: 100 }), "account:alice");
    expect(s.ok(peer(2)).peers[0]!.ip).toBe("10.0.0.77");
    s.ok(peer(1, { stopped: true }), "account:alice");
    expect(s.ok(peer(2)).peers).toEqual([]);
    s.ok(peer(1), "account:bob");
  });

  it.each([
    ["127.0.0.1", "loopback"],
    ["::1", "loopback"],
    ["169.254.169.254", "link-local"],
    ["fe80::1", "link-local"],
    ["0.0.0.0", "unspecified"],
    ["::", "unspecified"],
    ["::ffff:169.254.169.254", "link-local"],
    ["fd00:ec2::254", "metadata"],
    ["100.100.100.200", "metadata"],
    ["224.0.0.1", "multicast"],
  ])("refuses a peer at %s (%s), so it is never handed out", (ip, kind) => {
    clock = 0;
    const s = swarm();
    const outcome = s.announce(peer(1, { ip, complete: true, have: 100 }), "address:10.0.0.1");
    expect(outcome).toMatchObject({ ok: false, status: 403 });
    expect(!outcome.ok && outcome.reason).toContain(kind);
    expect(s.ok(peer(2)).peers).toEqual([]);
  });

  it("accepts loopback peers only when allowed (a devcluster), and never link-local ones", () => {
    clock = 0;
    const s = swarm({ allowLoopback: true });
    s.ok(peer(1, { ip: "127.0.0.1" }));
    expect(s.announce(peer(2, { ip: "169.254.169.254" }), "address:127.0.0.1").ok).toBe(false);
    expect(s.ok(peer(3, { ip: "127.0.0.1" })).peers.map((p) => p.peerId)).toEqual([id(1)]);
  });

  it("caps the peers of one address, and the peers of an object", () => {
    clock = 0;
    const s = swarm({ maxPeersPerAddress: 3, maxPeers: 6 });
    for (let i = 1; i <= 3; i++) s.ok(peer(i), "address:10.6.6.6");
    expect(s.announce(peer(4), "address:10.6.6.6")).toMatchObject({ ok: false, status: 429 });
    // An account is held to the object's cap only (a fleet shares one token).
    for (let i = 4; i <= 6; i++) s.ok(peer(i), "account:fleet");
    expect(s.size).toBe(6);
    // Past the cap a newcomer is answered (it can fetch) but not held, so nobody is handed it.
    const late = s.ok(peer(7), "account:fleet");
    expect(late.peers.length).toBeGreaterThan(0);
    expect(late.webSeedSlicePieces).toBe(0);
    expect(s.size).toBe(6);
  });

  it("refuses a flood of re-announces, not an agent keeping to the interval", () => {
    clock = 0;
    const s = swarm();
    const outcomes = Array.from({ length: 100 }, () => s.announce(peer(1), "address:10.0.0.1").ok);
    expect(outcomes.filter((ok) => !ok).length).toBeGreaterThan(80);
    for (let t = 1; t <= 60; t++) {
      clock = t * 500;
      expect(s.announce(peer(1), "address:10.0.0.1").ok).toBe(true);
    }
  });
});

describe("Swarm: at fleet size", () => {
  it("asks a big swarm for a longer interval, so one object takes at most ~400 announces/s", () => {
    clock = 0;
    const s = swarm({ maxPeers: 50_000 });
    const rates: Record<number, number> = {};
    for (let i = 1; i <= 20_000; i++) {
      s.ok(peer(i, { ip: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}` }), `account:fleet${i % 50}`);
      if ([1_000, 5_000, 20_000].includes(i)) rates[i] = i / s.interval();
    }
    expect(s.interval()).toBe(50);
    expect(s.minInterval()).toBe(13);
    for (const rate of Object.values(rates)) expect(rate).toBeLessThanOrEqual(400);
    // Each peer is forgotten three of its intervals (+1 s) after its last announce: the last 400
    // were told 50 s, those before shorter intervals as the swarm grew.
    clock = 150_000;
    s.expire();
    expect(s.size).toBe(400);
    clock = 152_000;
    expect(s.expire()).toBe(400);
    expect(s.size).toBe(0);
  });

  it("tiles the ring through random churn: joins, completions, departures", () => {
    clock = 0;
    let seed = 42;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const s = swarm({ random, maxHandout: 30 });
    const pieces = 37;
    const live = new Set<number>();
    for (let step = 0; step < 3_000; step++) {
      const n = 1 + Math.floor(random() * 120);
      const action = random();
      if (action < 0.6) {
        s.ok(peer(n, { pieceCount: pieces, ip: "10.1.0." + n }), `account:a`);
        live.add(n);
      } else if (action < 0.8) {
        s.ok(peer(n, { pieceCount: pieces, ip: "10.1.0." + n, stopped: true }), `account:a`);
        live.delete(n);
      } else {
        s.ok(peer(n, { pieceCount: pieces, ip: "10.1.0." + n, complete: true, have: pieces }), `account:a`);
        live.delete(n);
      }
      clock += 100;
      if (step % 500 === 499 && live.size > 0) {
        // A first pass brings back those that expired meanwhile; the second reads the slices.
        for (const l of live) s.ok(peer(l, { pieceCount: pieces, ip: "10.1.0." + l }), "account:a");
        clock += 5_000;
        const owners = new Array<number>(pieces).fill(0);
        for (const l of live) {
          const { webSeedStartPiece: start, webSeedSlicePieces: slice } = s.ok(peer(l, { pieceCount: pieces, ip: "10.1.0." + l }), "account:a");
          for (let k = 0; k < slice!; k++) owners[(start + k) % pieces]!++;
        }
        expect(owners).toEqual(new Array(pieces).fill(1));
      }
    }
  });

  it("as shard i of n, tiles its share of the ring: the arc its leechers span among all the swarm's", () => {
    clock = 0;
    // Room for all five on this shard's ring (its share of 20 readers).
    const s = swarm({ shard: { index: 1, count: 4 }, webSeedReaders: 20 });
    const owners = () => {
      const counts = new Array<number>(64).fill(0);
      for (let i = 1; i <= 5; i++) {
        const { webSeedStartPiece: start, webSeedSlicePieces: slice } = s.ok(peer(i, { pieceCount: 64 }));
        for (let k = 0; k < slice!; k++) counts[(start + k) % 64]!++;
      }
      return counts;
    };
    for (let i = 1; i <= 5; i++) s.ok(peer(i, { pieceCount: 64 }));
    // Alone as far as it knows: the whole ring, rather than pieces nobody owns.
    expect(owners()).toEqual(new Array(64).fill(1));
    // Shards 0, 2 and 3 hold 5, 10 and 0 leechers: shard 1's 5 of 20 come after shard 0's 5.
    const summary = (shard: number, leechers: number) => ({ shard, peers: leechers, leechers, sample: [], expiresAt: 60_000 });
    s.learn([summary(0, 5), summary(2, 10), summary(3, 0)]);
    expect(owners()).toEqual([...new Array(16).fill(0), ...new Array(16).fill(1), ...new Array(32).fill(0)]);
  });

  it("gives at most webSeedReaders leechers a slice; a freed place goes to the next leecher to announce", () => {
    clock = 0;
    const s = swarm({ webSeedReaders: 4 });
    const slices = (ns: number[]) => ns.map((n) => s.ok(peer(n, { pieceCount: 64 }))).map((a) => ({ start: a.webSeedStartPiece, slice: a.webSeedSlicePieces!, settled: a.webSeedSettledPieces! }));
    // The first alone owns the ring, but only its quarter is settled: three more readers may come.
    expect(slices([1])).toEqual([{ start: 0, slice: 64, settled: 16 }]);
    const first = slices([2, 3, 4, 5, 6, 7, 8]);
    expect(first.slice(4).every((x) => x.slice === 0 && x.settled === 0)).toBe(true);
    // Those without a place start where their peer ids say, so they do not all measure from piece 0.
    // (peers 6, 7 and 8: ids ending in …06, …07, …08)
    expect(first.slice(4).map((x) => x.start)).toEqual([6, 7, 8]);
    // Again, now that the ring is full: the four readers tile it, each slice settled whole.
    const again = slices([1, 2, 3, 4, 5, 6, 7, 8]);
    const owners = new Array<number>(64).fill(0);
    for (const { start, slice, settled } of again) {
      expect(settled).toBe(slice);
      for (let k = 0; k < slice; k++) owners[(start + k) % 64]!++;
    }
    expect(owners).toEqual(new Array(64).fill(1));
    expect(again.filter((x) => x.slice > 0)).toHaveLength(4);
    // A reader completes: the next leecher to announce takes its place, and the ring stays tiled.
    s.ok(peer(2, { pieceCount: 64, complete: true, have: 64 }));
    const after = slices([5, 6, 7, 8]);
    expect(after[0]!.slice).toBeGreaterThan(0);
    expect(after.slice(1).every((x) => x.slice === 0)).toBe(true);
    const tiled = new Array<number>(64).fill(0);
    for (const { start, slice } of slices([1, 3, 4, 5])) for (let k = 0; k < slice; k++) tiled[(start + k) % 64]!++;
    expect(tiled).toEqual(new Array(64).fill(1));
  });
});
