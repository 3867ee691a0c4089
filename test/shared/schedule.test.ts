import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { SwarmScheduler, WEB_SEED, rarestFirst, seededRandom, sequential, type SchedulerAction, type SchedulerConfig } from "../../src/shared/p2p/schedule/index.js";
import { runModel, type ModelPeer, type PeerBehaviour } from "../helpers/schedule-model.js";
import { refusedAddress } from "../../src/shared/p2p/peer-address.js";

/**
 * The swarm scheduler alone: no sockets, no timers, a virtual clock. Table-driven cases for each
 * rule, then properties over random swarms (peer behaviours, pieces, failures) checked by the
 * model world in test/helpers/schedule-model.ts on every action.
 */

const SELF = "00".repeat(20);
const idOf = (n: number) => n.toString(16).padStart(40, "0");

function scheduler(pieceCount: number, overrides: Partial<SchedulerConfig> = {}): SwarmScheduler {
  return new SwarmScheduler({
    pieceCount,
    selfPeerId: SELF,
    maxPeers: 16,
    piecesPerPeer: 2,
    webSeedConcurrency: 1,
    requestTimeoutMs: 1_000,
    stallTimeoutMs: 60_000,
    random: seededRandom(1),
    ...overrides,
  });
}

function bits(pieceCount: number, pieces: number[]): Uint8Array {
  const out = new Uint8Array(Math.ceil(pieceCount / 8));
  for (const i of pieces) out[i >> 3]! |= 0x80 >> (i & 7);
  return out;
}

const handoutPeer = (n: number, have = 0) => ({ peerId: idOf(n), ip: `10.0.0.${n}`, port: 4000, zone: "z", cluster: "c", complete: false, have });
const of = <T extends SchedulerAction["type"]>(actions: SchedulerAction[], type: T) => actions.filter((a): a is Extract<SchedulerAction, { type: T }> => a.type === type);

describe("SwarmScheduler, rule by rule", () => {
  it("announces first, dials the handout (never itself), and asks connected peers only for pieces they have", () => {
    const s = scheduler(8);
    s.handle({ type: "start", have: [] }, 0);
    expect(of(s.poll(0), "announce")).toHaveLength(1);
    s.handle({ type: "announced", response: { interval: 3, peers: [{ ...handoutPeer(0), peerId: SELF }, handoutPeer(1, 4), handoutPeer(2, 4)], webSeedStartPiece: 0, webSeedSlicePieces: 0 } }, 10);
    const connects = of(s.poll(10), "connect");
    expect(connects.map((c) => c.peer)).toEqual(["10.0.0.1:4000", "10.0.0.2:4000"]);
    s.handle({ type: "peer-connected", peer: "10.0.0.1:4000", peerId: idOf(1), inbound: false, bitfield: bits(8, [0, 1, 2, 3]) }, 20);
    const requests = of(s.poll(20), "request");
    expect(requests).toHaveLength(2);
    for (const r of requests) expect([0, 1, 2, 3]).toContain(r.index);
  });

  it("knows which peers hold a piece (from bitfields, haves and completes), so a have need not go to them", () => {
    const s = scheduler(16);
    s.handle({ type: "start", have: [] }, 0);
    s.handle({ type: "peer-connected", peer: "a", peerId: idOf(1), inbound: false, bitfield: bits(16, [0, 3]) }, 0);
    s.handle({ type: "peer-connected", peer: "b", peerId: idOf(2), inbound: true, bitfield: bits(16, []) }, 0);
    expect([s.peerHolds("a", 0), s.peerHolds("a", 3), s.peerHolds("a", 1), s.peerHolds("b", 0)]).toEqual([true, true, false, false]);
    s.handle({ type: "have", peer: "b", index: 5 }, 1);
    expect(s.peerHolds("b", 5)).toBe(true);
    s.handle({ type: "peer-complete", peer: "a" }, 2);
    expect(Array.from({ length: 16 }, (_, i) => s.peerHolds("a", i)).every(Boolean)).toBe(true);
    // Out of range, unknown and departed peers hold nothing.
    expect([s.peerHolds("a", -1), s.peerHolds("a", 16), s.peerHolds("nobody", 0)]).toEqual([false, false, false]);
    s.handle({ type: "peer-left", peer: "a" }, 3);
    expect(s.peerHolds("a", 0)).toBe(false);
  });

  it("resumes with the pieces it was given and finishes at once when it has them all", () => {
    const s = scheduler(3);
    s.handle({ type: "start", have: [0, 1, 2] }, 0);
    expect(s.poll(0)).toEqual([{ type: "finished" }]);
  });

  it("gives a timed-out request back, cancels it, and drops a peer after three strikes", () => {
    const s = scheduler(8, { piecesPerPeer: 1, requestTimeoutMs: 100 });
    s.handle({ type: "start", have: [] }, 0);
    s.poll(0);
    s.handle({ type: "peer-connected", peer: "p", peerId: idOf(1), inbound: true, bitfield: bits(8, [0, 1, 2, 3, 4, 5, 6, 7]) }, 0);
    let t = 0;
    const seen: SchedulerAction[] = [];
    for (let round = 0; round < 3; round++) {
      seen.push(...s.poll(t));
      t = s.nextTimeout()!;
      expect(t).toBeLessThanOrEqual(round * 100 + 100 + 1);
      s.handle({ type: "timer" }, t);
    }
    seen.push(...s.poll(t));
    expect(of(seen, "cancel")).toHaveLength(3);
    expect(of(seen, "drop")).toEqual([{ type: "drop", peer: "p", reason: "too slow", ban: false }]);
    expect(s.isConnected("p")).toBe(false);
  });

  it("bans a peer whose piece fails verification, by address and by peer id, and never dials it again", () => {
    const s = scheduler(4);
    s.handle({ type: "start", have: [] }, 0);
    s.poll(0);
    s.handle({ type: "peer-connected", peer: "10.0.0.1:4000", peerId: idOf(1), inbound: false, bitfield: bits(4, [0, 1, 2, 3]) }, 0);
    const [first] = of(s.poll(0), "request");
    s.handle({ type: "piece-arrived", index: first!.index, from: "10.0.0.1:4000" }, 5);
    s.handle({ type: "piece-invalid", index: first!.index, from: "10.0.0.1:4000" }, 6);
    expect(of(s.poll(6), "drop")).toEqual([{ type: "drop", peer: "10.0.0.1:4000", reason: `piece ${first!.index} failed verification`, ban: true }]);
    expect(s.isBanned(idOf(1))).toBe(true);
    s.handle({ type: "announced", response: { interval: 3, peers: [handoutPeer(1, 4)], webSeedStartPiece: 0 } }, 10);
    expect(of(s.poll(10), "connect")).toHaveLength(0);
    // The same peer id from another address, inbound: refused.
    s.handle({ type: "peer-connected", peer: "in:10.0.0.9:5000", peerId: idOf(1), inbound: true, bitfield: bits(4, [0, 1, 2, 3]) }, 11);
    expect(of(s.poll(11), "drop")[0]).toMatchObject({ peer: "in:10.0.0.9:5000", ban: true });
  });

  it("backs off a busy peer that rejected a request, then asks it again", () => {
    const s = scheduler(4, { tuning: { rejectBackoffMs: 500 } });
    s.handle({ type: "start", have: [] }, 0);
    s.poll(0);
    s.handle({ type: "peer-connected", peer: "p", peerId: idOf(1), inbound: false, bitfield: bits(4, [0, 1, 2, 3]) }, 0);
    const requests = of(s.poll(0), "request");
    for (const r of requests) s.handle({ type: "rejected", peer: "p", index: r.index }, 10);
    expect(of(s.poll(10), "request")).toHaveLength(0);
    expect(of(s.poll(400), "request")).toHaveLength(0);
    expect(of(s.poll(511), "request")).toHaveLength(2);
  });

  it("says which haves call for a poll: only those a request could follow now", () => {
    const s = scheduler(16, { piecesPerPeer: 1, tuning: { maxPiecesInFlight: 2, rejectBackoffMs: 500 } });
    s.handle({ type: "start", have: [] }, 0);
    s.poll(0);
    for (const [peer, n, have] of [["a", 1, [0]], ["b", 2, [1]], ["c", 3, []], ["d", 4, []]] as const) s.handle({ type: "peer-connected", peer, peerId: idOf(n), inbound: false, bitfield: bits(16, [...have]) }, 0);
    expect(of(s.poll(0), "request").map((r) => `${r.peer}:${r.index}`).sort()).toEqual(["a:0", "b:1"]);
    // Every in-flight slot taken: nothing to ask for, and a poll agrees.
    expect(s.handle({ type: "have", peer: "c", index: 2 }, 1)).toBe(false);
    expect(of(s.poll(1), "request")).toHaveLength(0);
    expect(s.handle({ type: "piece-arrived", index: 0, from: "a" }, 2)).toBe(true);
    expect(of(s.poll(2), "request").map((r) => `${r.peer}:${r.index}`)).toEqual(["c:2"]);
    s.handle({ type: "piece-verified", index: 0, from: "a" }, 3);
    s.poll(3);
    // A piece we hold, or one being fetched from another peer: nothing to follow.
    expect(s.handle({ type: "have", peer: "d", index: 0 }, 4)).toBe(false);
    expect(s.handle({ type: "have", peer: "a", index: 1 }, 4)).toBe(false);
    // A peer that just rejected us is left alone for the backoff, whatever it gains.
    s.handle({ type: "rejected", peer: "c", index: 2 }, 10);
    expect(s.handle({ type: "have", peer: "c", index: 7 }, 20)).toBe(false);
    expect(of(s.poll(20), "request").map((r) => `${r.peer}:${r.index}`)).toEqual([]);
    // A peer with room, a piece nobody is fetching, a free slot: poll, and the poll asks for it.
    expect(s.handle({ type: "have", peer: "d", index: 9 }, 30)).toBe(true);
    expect(of(s.poll(30), "request").map((r) => `${r.peer}:${r.index}`)).toEqual(["d:9"]);
    // The endgame asks for busy pieces too: a have of one wakes the pass.
    const e = scheduler(2, { piecesPerPeer: 2 });
    e.handle({ type: "start", have: [] }, 0);
    e.handle({ type: "peer-connected", peer: "a", peerId: idOf(1), inbound: false, bitfield: bits(2, [0, 1]) }, 0);
    e.handle({ type: "peer-connected", peer: "b", peerId: idOf(2), inbound: false, bitfield: bits(2, []) }, 0);
    e.poll(0);
    expect(e.handle({ type: "have", peer: "b", index: 0 }, 1)).toBe(true);
  });

  it("in the endgame asks a second peer for a piece in flight, and cancels the loser when one arrives", () => {
    const s = scheduler(1, { piecesPerPeer: 1 });
    s.handle({ type: "start", have: [] }, 0);
    s.poll(0);
    s.handle({ type: "peer-connected", peer: "a", peerId: idOf(1), inbound: false, bitfield: bits(1, [0]) }, 0);
    s.handle({ type: "peer-connected", peer: "b", peerId: idOf(2), inbound: false, bitfield: bits(1, [0]) }, 0);
    s.handle({ type: "peer-connected", peer: "c", peerId: idOf(3), inbound: false, bitfield: bits(1, [0]) }, 0);
    // The first pass asks one peer; once every missing piece is in flight (the endgame), one
    // more, and no third (at most 2 peers per piece).
    const [first] = of(s.poll(0), "request");
    const [second] = of(s.poll(1), "request");
    expect(of(s.poll(2), "request")).toHaveLength(0);
    expect(second!.peer).not.toBe(first!.peer);
    const [winner, loser] = [second!, first!];
    s.handle({ type: "piece-arrived", index: 0, from: winner!.peer }, 50);
    s.handle({ type: "piece-verified", index: 0, from: winner!.peer }, 51);
    const after = s.poll(51);
    expect(of(after, "cancel")).toEqual([{ type: "cancel", peer: loser!.peer, index: 0 }]);
    expect(of(after, "have")).toEqual([{ type: "have", index: 0 }]);
    expect(after.at(-1)).toEqual({ type: "finished" });
  });

  it("reads only its own slice from the web seed while peers are joining, the first piece at once", () => {
    const s = scheduler(16);
    s.handle({ type: "start", have: [] }, 0);
    s.poll(0);
    s.handle({ type: "announced", response: { interval: 3, peers: [handoutPeer(1), handoutPeer(2)], webSeedStartPiece: 4, webSeedSlicePieces: 4 } }, 10);
    const first = s.poll(10);
    expect(of(first, "web-seed")).toEqual([{ type: "web-seed", index: 4 }]);
    // Not settled yet (the slice has not held a second): the next piece waits, and it asks again.
    s.handle({ type: "piece-arrived", index: 4, from: WEB_SEED }, 200);
    s.handle({ type: "piece-verified", index: 4, from: WEB_SEED }, 201);
    const second = s.poll(201);
    expect(of(second, "web-seed")).toHaveLength(0);
    s.handle({ type: "connect-failed", peer: "10.0.0.1:4000", backoff: true }, 300);
    s.handle({ type: "connect-failed", peer: "10.0.0.2:4000", backoff: true }, 300);
    expect(of(s.poll(1_000), "announce")).toHaveLength(1);
    s.handle({ type: "announced", response: { interval: 3, peers: [handoutPeer(1), handoutPeer(2)], webSeedStartPiece: 4, webSeedSlicePieces: 4 } }, 1_050);
    expect(of(s.poll(1_050), "web-seed")).toEqual([{ type: "web-seed", index: 5 }]);
  });

  it("reads the settled part of its slice at once, the rest once the slice has held", () => {
    const s = scheduler(16);
    s.handle({ type: "start", have: [] }, 0);
    s.poll(0);
    // Slice 4..11, of which 4..5 stay ours whoever joins (the tracker's webSeedSettledPieces).
    s.handle({ type: "announced", response: { interval: 3, peers: [handoutPeer(1), handoutPeer(2)], webSeedStartPiece: 4, webSeedSlicePieces: 8, webSeedSettledPieces: 2 } }, 10);
    expect(of(s.poll(10), "web-seed")).toEqual([{ type: "web-seed", index: 4 }]);
    s.handle({ type: "piece-arrived", index: 4, from: WEB_SEED }, 200);
    s.handle({ type: "piece-verified", index: 4, from: WEB_SEED }, 201);
    expect(of(s.poll(201), "web-seed")).toEqual([{ type: "web-seed", index: 5 }]);
    s.handle({ type: "piece-arrived", index: 5, from: WEB_SEED }, 400);
    s.handle({ type: "piece-verified", index: 5, from: WEB_SEED }, 401);
    // Past the settled part: it waits for the slice to hold.
    expect(of(s.poll(401), "web-seed")).toHaveLength(0);
  });

  it("refuses an inbound peer past maxConnectedPeers (swarm full), and dials out as before", () => {
    const s = scheduler(8, { tuning: { maxConnectedPeers: 3 } });
    s.handle({ type: "start", have: [] }, 0);
    s.poll(0);
    for (let n = 1; n <= 4; n++) s.handle({ type: "peer-connected", peer: `10.0.0.${n}:4000`, peerId: idOf(n), inbound: true, bitfield: bits(8, [n]) }, 10);
    const drops = of(s.poll(10), "drop");
    expect(drops).toEqual([{ type: "drop", peer: "10.0.0.4:4000", reason: "swarm full: 3 peers connected", ban: false, full: true }]);
    expect(s.stats().peers).toBe(3);
    // One leaves: the next inbound peer is taken.
    s.handle({ type: "peer-left", peer: "10.0.0.1:4000" }, 20);
    s.handle({ type: "peer-connected", peer: "10.0.0.5:4000", peerId: idOf(5), inbound: true, bitfield: bits(8, [5]) }, 20);
    expect(of(s.poll(20), "drop")).toEqual([]);
    expect(s.isConnected("10.0.0.5:4000")).toBe(true);
  });

  it("dials past maxPeers while its peers have nothing it lacks (an island of hosts that all lack the same pieces)", () => {
    const s = scheduler(8, { maxPeers: 2 });
    s.handle({ type: "start", have: [] }, 0);
    s.poll(0);
    s.handle({ type: "announced", response: { interval: 3, peers: [handoutPeer(1), handoutPeer(2)], webSeedStartPiece: 0, webSeedSlicePieces: 0 } }, 10);
    expect(of(s.poll(10), "connect")).toHaveLength(2);
    // Both connect holding only piece 0, which we then get: neither has anything we lack.
    s.handle({ type: "peer-connected", peer: "10.0.0.1:4000", peerId: idOf(1), inbound: false, bitfield: bits(8, [0]) }, 20);
    s.handle({ type: "peer-connected", peer: "10.0.0.2:4000", peerId: idOf(2), inbound: false, bitfield: bits(8, [0]) }, 20);
    const asked = of(s.poll(20), "request")[0]!;
    s.handle({ type: "piece-arrived", index: 0, from: asked.peer }, 30);
    s.handle({ type: "piece-verified", index: 0, from: asked.peer }, 31);
    s.poll(31);
    s.handle({ type: "announced", response: { interval: 3, peers: [handoutPeer(1), handoutPeer(2), { ...handoutPeer(3, 8), complete: true }], webSeedStartPiece: 0, webSeedSlicePieces: 0 } }, 3_000);
    expect(of(s.poll(3_000), "connect").map((c) => c.peer)).toEqual(["10.0.0.3:4000"]);
    // With a useful peer per place, no more.
    s.handle({ type: "peer-connected", peer: "10.0.0.3:4000", peerId: idOf(3), inbound: false, bitfield: bits(8, [0, 1, 2, 3, 4, 5, 6, 7]) }, 3_010);
    s.handle({ type: "peer-connected", peer: "10.0.0.4:4000", peerId: idOf(4), inbound: true, bitfield: bits(8, [5]) }, 3_010);
    s.poll(3_010);
    s.handle({ type: "announced", response: { interval: 3, peers: [handoutPeer(5, 4)], webSeedStartPiece: 0, webSeedSlicePieces: 0 } }, 6_000);
    expect(of(s.poll(6_000), "connect")).toHaveLength(0);
  });

  it("pauses web-seed reads after failures, longer each time", () => {
    const s = scheduler(2);
    s.handle({ type: "start", have: [] }, 0);
    s.poll(0);
    s.handle({ type: "announced", response: { interval: 3, peers: [], webSeedStartPiece: 0, webSeedSlicePieces: 2 } }, 0);
    expect(of(s.poll(0), "web-seed")).toHaveLength(1);
    s.handle({ type: "web-seed-failed", index: 0 }, 10);
    expect(of(s.poll(10), "web-seed")).toHaveLength(0);
    expect(of(s.poll(511), "web-seed")).toHaveLength(1);
    s.handle({ type: "web-seed-failed", index: 0 }, 520);
    expect(of(s.poll(1_100), "web-seed")).toHaveLength(0);
    expect(of(s.poll(1_521), "web-seed")).toHaveLength(1);
  });

  it("fails when nothing verifies for the stall timeout", () => {
    const s = scheduler(2, { stallTimeoutMs: 1_000 });
    s.handle({ type: "start", have: [] }, 0);
    s.poll(0);
    s.handle({ type: "announce-failed" }, 5);
    s.handle({ type: "web-seed-failed", index: 0 }, 6);
    let t = 6;
    let actions: SchedulerAction[] = [];
    while (!s.finished && t < 10_000) {
      actions = s.poll(t);
      for (const a of of(actions, "web-seed")) s.handle({ type: "web-seed-failed", index: a.index }, t);
      t = s.nextTimeout() ?? t + 100;
    }
    expect(s.finished).toBe(true);
    expect(of(actions, "failed")[0]?.reason).toMatch(/no verified piece for 1 s/);
  });

  it("reads a piece a reader waits for from the web seed outside its slice, once handshakes with peers that have pieces are done", () => {
    const s = scheduler(100);
    s.handle({ type: "start", have: [] }, 0);
    s.handle({ type: "priorities", pieces: [98, 99] }, 0);
    // Before the first answer the tracker may name a peer that has them: the edge waits.
    expect(of(s.poll(0), "web-seed")).toHaveLength(0);
    // A handed-out peer with pieces: the reader's pieces wait for its handshake (a second host's
    // lazy read comes from the first host's partial copy).
    s.handle({ type: "announced", response: { interval: 3, peers: [handoutPeer(1, 2)], webSeedStartPiece: 0, webSeedSlicePieces: 10 } }, 10);
    expect(of(s.poll(10), "web-seed")).toHaveLength(0);
    // It had other pieces: the reader's come from the web seed at once, both (one read more than
    // the usual concurrency of 1), whatever the slice.
    s.handle({ type: "peer-connected", peer: "10.0.0.1:4000", peerId: idOf(1), inbound: false, bitfield: bits(100, [0, 1]) }, 20);
    const actions = s.poll(20);
    expect(of(actions, "web-seed")).toEqual([
      { type: "web-seed", index: 98 },
      { type: "web-seed", index: 99 },
    ]);
  });

  it("waits for a handshake that does not end for the hold at most, then reads a reader's piece from the web seed", () => {
    const s = scheduler(100);
    s.handle({ type: "start", have: [] }, 0);
    s.poll(0);
    s.handle({ type: "priorities", pieces: [50] }, 5);
    // The tracker says the peer had nothing, but a lazy peer's count may be stale: wait for it.
    s.handle({ type: "announced", response: { interval: 3, peers: [handoutPeer(1, 0)], webSeedStartPiece: 0, webSeedSlicePieces: 10 } }, 10);
    expect(of(s.poll(10), "web-seed").map((a) => a.index)).not.toContain(50);
    expect(of(s.poll(400), "web-seed").map((a) => a.index)).not.toContain(50);
    expect(of(s.poll(511), "web-seed").map((a) => a.index)).toContain(50);
  });

  it("waits for a tracker that does not answer for the web seed's hold at most", () => {
    const s = scheduler(100);
    s.handle({ type: "start", have: [] }, 0);
    s.handle({ type: "priorities", pieces: [70] }, 0);
    expect(of(s.poll(0), "announce")).toHaveLength(1);
    expect(of(s.poll(1_900), "web-seed")).toHaveLength(0);
    expect(of(s.poll(2_001), "web-seed")).toEqual([{ type: "web-seed", index: 70 }]);
  });

  it("reads a reader's piece from the web seed at once when the tracker hands out nobody", () => {
    const s = scheduler(100);
    s.handle({ type: "start", have: [] }, 0);
    s.poll(0);
    s.handle({ type: "priorities", pieces: [50] }, 5);
    s.handle({ type: "announced", response: { interval: 3, peers: [], webSeedStartPiece: 0, webSeedSlicePieces: 100 } }, 10);
    expect(of(s.poll(10), "web-seed").map((a) => a.index)).toEqual([50]);
  });

  it("a background event makes a swarm that fetched only readers' pieces fetch the rest", () => {
    const s = scheduler(4, { background: false });
    s.handle({ type: "start", have: [] }, 0);
    // It tells the tracker it fetches only for its readers (no web-seed slice for it)...
    expect(of(s.poll(0), "announce")).toEqual([{ type: "announce", have: 0, fetching: false }]);
    s.handle({ type: "announced", response: { interval: 3, peers: [], webSeedStartPiece: 0, webSeedSlicePieces: 4 } }, 10);
    expect(of(s.poll(10), "web-seed")).toHaveLength(0);
    s.handle({ type: "background", on: true }, 20);
    const after = s.poll(20);
    expect(of(after, "web-seed")).toEqual([{ type: "web-seed", index: 0 }]);
    // ...and at once that it now wants the whole blob (so it gets its slice).
    expect(of(after, "announce")).toEqual([{ type: "announce", have: 0, fetching: true }]);
  });

  it("asks nothing more while the disk is behind (pieces that arrived wait to be written)", () => {
    const s = scheduler(64, { piecesPerPeer: 4, tuning: { maxPiecesWaitingForDisk: 3 } });
    s.handle({ type: "start", have: [] }, 0);
    s.poll(0);
    s.handle({ type: "announced", response: { interval: 3, peers: [handoutPeer(1)], webSeedStartPiece: 0, webSeedSlicePieces: 0 } }, 1);
    s.poll(1);
    const all = Array.from({ length: 64 }, (_, i) => i);
    s.handle({ type: "peer-connected", peer: "10.0.0.1:4000", peerId: idOf(1), inbound: false, bitfield: bits(64, all) }, 2);
    let requested = of(s.poll(2), "request").map((r) => r.index);
    const arrived: number[] = [];
    // Pieces arrive and are not written yet: at three waiting, no new request goes out.
    for (let t = 3; arrived.length < 3; t++) {
      const index = requested.shift()!;
      s.handle({ type: "piece-arrived", index, from: "10.0.0.1:4000" }, t);
      arrived.push(index);
      requested.push(...of(s.poll(t), "request").map((r) => r.index));
    }
    const inFlight = requested.length;
    for (const index of requested) s.handle({ type: "piece-arrived", index, from: "10.0.0.1:4000" }, 20);
    expect(of(s.poll(20), "request")).toHaveLength(0);
    expect(s.stats().inFlight).toBe(0);
    // The disk catches up: requests go out again.
    for (const index of [...arrived, ...requested]) s.handle({ type: "piece-verified", index, from: "10.0.0.1:4000" }, 22);
    expect(of(s.poll(22), "request").length).toBeGreaterThan(0);
    expect(inFlight).toBeGreaterThan(0);
  });

  it("a whole read that comes while an announce is out is told to the tracker a second later", () => {
    const s = scheduler(4, { background: false });
    s.handle({ type: "start", have: [] }, 0);
    expect(of(s.poll(0), "announce")).toEqual([{ type: "announce", have: 0, fetching: false }]);
    s.handle({ type: "background", on: true }, 5);
    expect(of(s.poll(5), "announce")).toHaveLength(0);
    s.handle({ type: "announced", response: { interval: 30, peers: [handoutPeer(1)], webSeedStartPiece: 0, webSeedSlicePieces: 0 } }, 10);
    s.poll(10);
    expect(s.nextTimeout()).toBeLessThanOrEqual(1_010);
    expect(of(s.poll(1_010), "announce")).toEqual([{ type: "announce", have: 0, fetching: true }]);
  });

  it("without background completion fetches only what readers wait for, stays in the swarm, and never stalls idle", () => {
    const s = scheduler(20, { background: false, stallTimeoutMs: 1_000 });
    s.handle({ type: "start", have: [] }, 0);
    s.poll(0);
    s.handle({ type: "announced", response: { interval: 3, peers: [], webSeedStartPiece: 0, webSeedSlicePieces: 20 } }, 10);
    expect(of(s.poll(10), "web-seed")).toHaveLength(0);
    s.handle({ type: "priorities", pieces: [7] }, 20);
    expect(of(s.poll(20), "web-seed")).toEqual([{ type: "web-seed", index: 7 }]);
    s.handle({ type: "piece-arrived", index: 7, from: WEB_SEED }, 30);
    s.handle({ type: "piece-verified", index: 7, from: WEB_SEED }, 31);
    const after = s.poll(31);
    expect(of(after, "have")).toEqual([{ type: "have", index: 7 }]);
    expect(of(after, "web-seed")).toHaveLength(0);
    // Long idle: no failure, but it keeps announcing (peers learn of its partial copy).
    let t = 31;
    const announces: number[] = [];
    while (t < 60_000) {
      t = s.nextTimeout() ?? t + 1_000;
      for (const a of s.poll(t)) {
        expect(a.type).not.toBe("failed");
        if (a.type === "announce") {
          announces.push(a.have);
          s.handle({ type: "announced", response: { interval: 3, peers: [], webSeedStartPiece: 0, webSeedSlicePieces: 20 } }, t);
        }
      }
    }
    expect(s.finished).toBe(false);
    expect(announces.length).toBeGreaterThan(5);
    expect(announces.every((have) => have === 1)).toBe(true);
    // A reader that then waits with nothing arriving does fail after the stall timeout.
    s.handle({ type: "priorities", pieces: [3] }, t);
    for (const a of of(s.poll(t), "web-seed")) s.handle({ type: "web-seed-failed", index: a.index }, t);
    let failed = false;
    for (let k = 0; k < 200 && !failed; k++) {
      t = s.nextTimeout() ?? t + 100;
      for (const a of s.poll(t)) {
        if (a.type === "web-seed") s.handle({ type: "web-seed-failed", index: a.index }, t);
        if (a.type === "failed") failed = true;
      }
    }
    expect(failed).toBe(true);
  });

  it("asks a peer for the pieces a reader waits for first, in the reader's order", () => {
    const s = scheduler(50, { piecesPerPeer: 2 });
    s.handle({ type: "start", have: [] }, 0);
    s.poll(0);
    const all = Array.from({ length: 50 }, (_, i) => i);
    s.handle({ type: "peer-connected", peer: "a", peerId: idOf(1), inbound: false, bitfield: bits(50, all) }, 0);
    s.handle({ type: "priorities", pieces: [40, 41] }, 0);
    const requests = of(s.poll(0), "request");
    expect(requests.slice(0, 2).map((r) => r.index)).toEqual([40, 41]);
    // Once they are here the list empties itself and the rest goes on as before.
    for (const index of [40, 41]) {
      s.handle({ type: "piece-arrived", index, from: "a" }, 5);
      s.handle({ type: "piece-verified", index, from: "a" }, 6);
    }
    const next = of(s.poll(6), "request");
    expect(next.every((r) => r.index !== 40 && r.index !== 41)).toBe(true);
  });

  it("finishes whatever the readers ask for, and ignores pieces out of range", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.array(fc.integer({ min: -3, max: 40 }), { maxLength: 10 }), (seed, wanted) => {
        const s = scheduler(30, { random: seededRandom(seed) });
        s.handle({ type: "start", have: [] }, 0);
        s.handle({ type: "priorities", pieces: wanted }, 0);
        let t = 0;
        const inFlight = new Set<number>();
        for (let step = 0; step < 10_000 && !s.finished; step++) {
          for (const a of s.poll(t)) {
            if (a.type === "announce") s.handle({ type: "announced", response: { interval: 3, peers: [], webSeedStartPiece: 0, webSeedSlicePieces: 30 } }, t);
            if (a.type === "web-seed") inFlight.add(a.index);
          }
          const [next] = inFlight;
          if (next !== undefined) {
            inFlight.delete(next);
            s.handle({ type: "piece-arrived", index: next, from: WEB_SEED }, t);
            s.handle({ type: "piece-verified", index: next, from: WEB_SEED }, t);
          }
          t += 10;
        }
        expect(s.finished).toBe(true);
      }),
      { numRuns: 50 },
    );
  });

  it("never dials an address the policy refuses (an announcer may name the metadata endpoint)", () => {
    const s = scheduler(4, { refuseAddress: (ip) => refusedAddress(ip, { allowLoopback: false }) });
    s.handle({ type: "start", have: [] }, 0);
    s.poll(0);
    const bad = ["169.254.169.254", "127.0.0.1", "0.0.0.0", "::1", "fe80::1"].map((ip, n) => ({ ...handoutPeer(n + 1), ip }));
    s.handle({ type: "announced", response: { interval: 3, peers: [...bad, handoutPeer(9)], webSeedStartPiece: 0 } }, 10);
    expect(of(s.poll(10), "connect").map((c) => c.to.ip)).toEqual(["10.0.0.9"]);
  });

  it("keeps the tracker's minInterval for its quick second announce", () => {
    const s = scheduler(4);
    s.handle({ type: "start", have: [] }, 0);
    s.poll(0);
    s.handle({ type: "announced", response: { interval: 50, minInterval: 12, peers: [], webSeedStartPiece: 0, webSeedSlicePieces: 4 } }, 0);
    s.poll(0);
    expect(of(s.poll(11_000), "announce")).toHaveLength(0);
    expect(of(s.poll(12_000), "announce")).toHaveLength(1);
  });

  it("ranks rare pieces first and common ones in order; sequential takes the lowest index", () => {
    const availability = Uint16Array.from([5, 1, 4, 3, 1, 0]);
    const ranked = rarestFirst(3).rank({ candidates: [0, 1, 2, 3, 4, 5], availability, endgame: false }, seededRandom(3));
    expect(ranked.slice(0, 2).sort()).toEqual([1, 4]);
    expect(ranked.slice(2)).toEqual([0, 2, 3]);
    expect(sequential.rank({ candidates: [0, 1, 2, 3, 4, 5], availability, endgame: false }, seededRandom(3))).toEqual([0, 1, 2, 3, 4]);
  });
});

const behaviours: PeerBehaviour[] = ["good", "slow", "busy", "corrupt", "leaver", "unreachable", "grower"];

const worldArb = fc.record({
  seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  pieceCount: fc.integer({ min: 1, max: 40 }),
  peers: fc.array(fc.record({ behaviour: fc.constantFrom(...behaviours), share: fc.double({ min: 0, max: 1, noNaN: true }), pick: fc.integer({ min: 0, max: 2 ** 31 - 1 }) }), { maxLength: 12 }),
  webSeedFailure: fc.constantFrom(0, 0.2, 0.6),
  announceFailure: fc.constantFrom(0, 0.3),
  slice: fc.option(fc.record({ start: fc.integer({ min: 0, max: 39 }), pieces: fc.integer({ min: 0, max: 40 }) }), { nil: undefined }),
  piecesPerPeer: fc.integer({ min: 1, max: 4 }),
  maxPiecesInFlight: fc.integer({ min: 1, max: 8 }),
  webSeedConcurrency: fc.integer({ min: 1, max: 3 }),
});

type World = typeof worldArb extends fc.Arbitrary<infer T> ? T : never;

function toModel(world: World) {
  const random = seededRandom(world.seed + 7);
  const peers: ModelPeer[] = world.peers.map((p) => ({
    behaviour: p.behaviour,
    pieces: Array.from({ length: world.pieceCount }, (_, i) => i).filter(() => random() < p.share),
  }));
  return {
    seed: world.seed,
    pieceCount: world.pieceCount,
    peers,
    webSeedFailure: world.webSeedFailure,
    announceFailure: world.announceFailure,
    slice: world.slice ? { start: world.slice.start % world.pieceCount, pieces: world.slice.pieces } : undefined,
    config: {
      piecesPerPeer: world.piecesPerPeer,
      webSeedConcurrency: world.webSeedConcurrency,
      stallTimeoutMs: 10 * 60_000,
      tuning: { maxPiecesInFlight: world.maxPiecesInFlight },
    },
  };
}

describe("SwarmScheduler, properties over random swarms", () => {
  it("keeps its promises on every action, and always finishes while the web seed works in the end", () => {
    fc.assert(
      fc.property(worldArb, (world) => {
        const result = runModel(toModel(world));
        // Never a piece from a peer without it, never twice outside the endgame, per-peer and
        // per-swarm limits, never a banned peer again, nothing after the end (checked per action).
        expect(result.violations).toEqual([]);
        // Liveness: the web seed always gives every piece in the end, so the download finishes
        // (endgame included), whatever the peers do.
        expect(result.failed).toBeUndefined();
        expect(result.finished).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it("gets everything from good peers without the web seed when they hold every piece", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.integer({ min: 1, max: 60 }), fc.integer({ min: 1, max: 6 }), (seed, pieceCount, n) => {
        const all = Array.from({ length: pieceCount }, (_, i) => i);
        const peers: ModelPeer[] = Array.from({ length: n }, () => ({ behaviour: "good", pieces: all }));
        // Seeders handed out: the web seed holds off while their handshakes finish, then peers serve it all.
        const result = runModel({ seed, pieceCount, peers, webSeedFailure: 0, announceFailure: 0, slice: { start: 0, pieces: 0 } });
        expect(result.violations).toEqual([]);
        expect(result.finished).toBe(true);
        expect(result.webSeedReads).toBe(0);
      }),
      { numRuns: 100 },
    );
  });

  it("a corrupt peer is banned after its first bad piece and never asked again", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.integer({ min: 4, max: 30 }), (seed, pieceCount) => {
        const all = Array.from({ length: pieceCount }, (_, i) => i);
        const result = runModel({ seed, pieceCount, peers: [{ behaviour: "corrupt", pieces: all }, { behaviour: "good", pieces: all }], webSeedFailure: 0, announceFailure: 0 });
        expect(result.violations).toEqual([]);
        expect(result.finished).toBe(true);
        const bans = result.actions.filter((a) => a.type === "drop" && a.ban && a.peer === "10.0.0.1:4000");
        const bad = result.invalidFrom.get("10.0.0.1:4000") ?? 0;
        expect(bans.length).toBe(bad > 0 ? 1 : 0);
        // At most the pieces it had in flight when the first bad one was caught.
        expect(bad).toBeLessThanOrEqual(2);
      }),
      { numRuns: 100 },
    );
  });

  it("replays exactly from its seed", () => {
    fc.assert(
      fc.property(worldArb, (world) => {
        const a = runModel(toModel(world));
        const b = runModel(toModel(world));
        expect(JSON.stringify(b.actions)).toBe(JSON.stringify(a.actions));
        expect(b.elapsedMs).toBe(a.elapsedMs);
      }),
      { numRuns: 50 },
    );
  });
});
