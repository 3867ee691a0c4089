import { describe, expect, it } from "vitest";
import { Swarm, ringPosition } from "../../src/worker/tracker/swarm.js";
import type { AnnounceRequest } from "../../src/shared/api/announce.js";

const DIGEST = "sha256:" + "a".repeat(64);
let clock = 0;
const swarm = () => new Swarm({ now: () => clock, peerTtlMs: 10_000, intervalSeconds: 3, maxHandout: 4 });
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
    for (let i = 1; i <= 10; i++) s.announce(peer(i));
    const answer = s.announce(peer(1));
    expect(answer.peers).toHaveLength(4);
    expect(answer.peers.map((p) => p.peerId)).not.toContain(id(1));
    expect(answer.interval).toBe(3);
  });

  it("orders seeders first, then the same zone and cluster, then the same cluster, then others", () => {
    clock = 0;
    const s = new Swarm({ now: () => clock, peerTtlMs: 10_000, intervalSeconds: 3, maxHandout: 10 });
    s.announce(peer(2, { zone: "z2", cluster: "c2" }));
    s.announce(peer(3, { zone: "z2" }));
    s.announce(peer(4));
    s.announce(peer(5, { complete: true, zone: "z9", cluster: "c9", have: 100 }));
    const order = s.announce(peer(1)).peers.map((p) => p.peerId);
    expect(order).toEqual([id(5), id(4), id(3), id(2)]);
  });

  it("shuffles within a rank", () => {
    clock = 0;
    const s = swarm();
    for (let i = 2; i <= 30; i++) s.announce(peer(i));
    const firsts = new Set(Array.from({ length: 20 }, () => s.announce(peer(1)).peers[0]!.peerId));
    expect(firsts.size).toBeGreaterThan(3);
  });

  it("forgets peers that stop announcing, and peers that say stopped", () => {
    clock = 0;
    const s = swarm();
    s.announce(peer(1));
    s.announce(peer(2));
    expect(s.nextExpiry()).toBe(10_000);
    clock = 6_000;
    s.announce(peer(2));
    clock = 10_001;
    expect(s.expire()).toBe(1);
    expect(s.announce(peer(3)).peers.map((p) => p.peerId)).toEqual([id(2)]);
    s.announce(peer(2, { stopped: true }));
    expect(s.announce(peer(3)).peers).toEqual([]);
  });

  it("gives each newcomer a different web-seed start, spread over the pieces", () => {
    clock = 0;
    const s = swarm();
    const starts = Array.from({ length: 16 }, (_, i) => s.announce(peer(i + 1, { pieceCount: 64 })).webSeedStartPiece);
    expect(new Set(starts).size).toBe(16);
    expect(Math.max(...starts)).toBeLessThan(64);
    // A re-announce keeps its start.
    expect(s.announce(peer(5, { pieceCount: 64 })).webSeedStartPiece).toBe(starts[4]);
  });

  it.each([
    [4, 4],
    [16, 16],
    [16, 64],
    [8, 13],
  ])("%i peers on %i pieces: starts split the ring into near-equal arcs", (peers, pieces) => {
    clock = 0;
    const s = swarm();
    const starts = Array.from({ length: peers }, (_, i) => s.announce(peer(i + 1, { pieceCount: pieces })).webSeedStartPiece).sort((a, b) => a - b);
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
    s.announce(peer(100, { pieceCount: pieces, complete: true, have: pieces })); // a seeder owns nothing
    for (let i = 1; i <= leechers; i++) s.announce(peer(i, { pieceCount: pieces }));
    const owners = new Array<number>(pieces).fill(0);
    for (let i = 1; i <= leechers; i++) {
      // Re-announced once everyone is in: the slices as they settle.
      const { webSeedStartPiece: start, webSeedSlicePieces: slice } = s.announce(peer(i, { pieceCount: pieces }));
      for (let k = 0; k < slice!; k++) owners[(start + k) % pieces]!++;
    }
    expect(owners).toEqual(new Array(pieces).fill(1));
    expect(s.announce(peer(100, { pieceCount: pieces, complete: true, have: pieces })).webSeedSlicePieces).toBe(0);
  });

  it("hands a departed leecher's slice to the one before it on the ring", () => {
    clock = 0;
    const s = swarm();
    for (let i = 1; i <= 4; i++) s.announce(peer(i, { pieceCount: 16 }));
    expect(s.announce(peer(1, { pieceCount: 16 })).webSeedSlicePieces).toBe(4); // starts 0, 8, 4, 12
    s.announce(peer(3, { pieceCount: 16, stopped: true }));
    expect(s.announce(peer(1, { pieceCount: 16 })).webSeedSlicePieces).toBe(8);
    // A leecher that completes gives its slice up too.
    s.announce(peer(2, { pieceCount: 16, complete: true, have: 16 }));
    expect(s.announce(peer(4, { pieceCount: 16 })).webSeedSlicePieces).toBe(4);
    expect(s.announce(peer(1, { pieceCount: 16 })).webSeedSlicePieces).toBe(12);
  });
});

describe("ringPosition", () => {
  it("is the van der Corput sequence", () => {
    expect([0, 1, 2, 3, 4, 5, 6, 7].map(ringPosition)).toEqual([0, 0.5, 0.25, 0.75, 0.125, 0.625, 0.375, 0.875]);
  });
});
