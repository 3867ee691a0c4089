import type { HandoutPeer } from "../../src/shared/api/announce.js";
import { Bitfield } from "../../src/shared/p2p/bitfield.js";
import { SwarmScheduler, WEB_SEED, seededRandom, type PieceSource, type Random, type SchedulerAction, type SchedulerConfig, type SchedulerEvent } from "../../src/shared/p2p/schedule/index.js";

/**
 * A model world for one SwarmScheduler: fake peers with chosen behaviours, a web seed and a
 * tracker, all on a virtual clock with seeded delays. It plays the driver (it turns actions into
 * later events) and checks the scheduler's promises on every action it sees.
 */
export type PeerBehaviour = "good" | "slow" | "busy" | "corrupt" | "leaver" | "unreachable" | "grower";

export interface ModelPeer {
  behaviour: PeerBehaviour;
  /** Pieces it has from the start (growers gain the rest over time). */
  pieces: number[];
}

export interface ModelOptions {
  seed: number;
  pieceCount: number;
  peers: ModelPeer[];
  /** The web seed fails this fraction of reads (it always works in the end). */
  webSeedFailure: number;
  /** The tracker fails this fraction of announces. */
  announceFailure: number;
  /** The tracker's slice for us (start, length), or undefined (an older edge). */
  slice?: { start: number; pieces: number };
  config?: Partial<SchedulerConfig>;
  /** Give up (and report) after this much virtual time. */
  horizonMs?: number;
}

export interface ModelResult {
  finished: boolean;
  failed: string | undefined;
  elapsedMs: number;
  actions: SchedulerAction[];
  violations: string[];
  requestsTo: Map<string, number>;
  /** Bad pieces handed to the scheduler, by sender. */
  invalidFrom: Map<string, number>;
  webSeedReads: number;
}

interface Pending {
  at: number;
  seq: number;
  event: SchedulerEvent | (() => void);
}

export function runModel(options: ModelOptions): ModelResult {
  const random: Random = seededRandom(options.seed ^ 0x5bd1e995);
  const config: SchedulerConfig = {
    pieceCount: options.pieceCount,
    selfPeerId: "00".repeat(20),
    maxPeers: 16,
    piecesPerPeer: 2,
    webSeedConcurrency: 1,
    requestTimeoutMs: 2_000,
    stallTimeoutMs: 120_000,
    random: seededRandom(options.seed),
    ...options.config,
  };
  const scheduler = new SwarmScheduler(config);
  const horizon = options.horizonMs ?? 30 * 60_000;
  const queue: Pending[] = [];
  let seq = 0;
  let now = 0;
  const at = (delay: number, event: Pending["event"]) => {
    queue.push({ at: now + delay, seq: seq++, event });
  };
  const delay = (min: number, max: number) => min + Math.floor(random() * (max - min));

  // The world: peers by key, what they have (as told to the scheduler), what is asked of them.
  const peers = options.peers.map((p, n) => ({
    ...p,
    key: `10.0.0.${n + 1}:4000`,
    peerId: (n + 1).toString(16).padStart(40, "0"),
    have: new Bitfield(options.pieceCount),
    connected: false,
    left: false,
  }));
  for (const p of peers) for (const i of p.pieces) p.have.set(i);
  const byKey = new Map(peers.map((p) => [p.key, p]));
  const handout: HandoutPeer[] = [
    { peerId: config.selfPeerId, ip: "10.0.0.0", port: 4000, zone: "z", cluster: "c", complete: false, have: 0 },
    ...peers.map((p) => ({ peerId: p.peerId, ip: p.key.split(":")[0]!, port: 4000, zone: "z", cluster: "c", complete: p.have.count() === options.pieceCount, have: p.have.count() })),
  ];

  const violations: string[] = [];
  const actions: SchedulerAction[] = [];
  const requestsTo = new Map<string, number>();
  const invalidFrom = new Map<string, number>();
  /** What the model knows to be in flight: peer requests by piece, web-seed reads, verifications. */
  const inFlight = new Map<number, Set<string>>();
  const webInFlight = new Set<number>();
  const verifying = new Set<number>();
  const banned = new Set<string>();
  const have = new Bitfield(options.pieceCount);
  let haveCount = 0;
  let finished = false;
  let failed: string | undefined;
  let webSeedReads = 0;

  const done = (i: number, key: string) => {
    inFlight.get(i)?.delete(key);
    if (inFlight.get(i)?.size === 0) inFlight.delete(i);
  };
  const check = (action: SchedulerAction) => {
    const violate = (what: string) => violations.push(`t=${now} ${JSON.stringify(action)}: ${what}`);
    if (finished || failed) violate("an action after the download ended");
    if (action.type === "request") {
      const peer = byKey.get(action.peer);
      if (!peer || !peer.connected) violate("request to a peer that is not connected");
      else if (!peer.have.has(action.index)) violate("request for a piece the peer does not have");
      if (banned.has(action.peer) || (peer && banned.has(peer.peerId))) violate("request to a banned peer");
      if (have.has(action.index)) violate("request for a piece we have");
      if (verifying.has(action.index)) violate("request for a piece being verified");
      if (inFlight.get(action.index)?.has(action.peer)) violate("the same piece twice from one peer");
      let endgame = true;
      for (let i = 0; i < options.pieceCount && endgame; i++) {
        if (!have.has(i) && !inFlight.has(i) && !webInFlight.has(i) && !verifying.has(i)) endgame = false;
      }
      if (!endgame && (inFlight.has(action.index) || webInFlight.has(action.index))) violate("a piece requested twice outside the endgame");
      const perPeer = [...inFlight.values()].filter((s) => s.has(action.peer)).length;
      if (perPeer >= config.piecesPerPeer) violate("more pieces in flight from one peer than piecesPerPeer");
      if (!endgame && inFlight.size + webInFlight.size >= (config.tuning?.maxPiecesInFlight ?? 4)) violate("more pieces in flight than maxPiecesInFlight");
      let set = inFlight.get(action.index);
      if (!set) inFlight.set(action.index, (set = new Set()));
      set.add(action.peer);
      requestsTo.set(action.peer, (requestsTo.get(action.peer) ?? 0) + 1);
    } else if (action.type === "connect") {
      if (banned.has(action.peer) || banned.has(action.to.peerId)) violate("connect to a banned peer");
      if (action.to.peerId === config.selfPeerId) violate("connect to ourselves");
    } else if (action.type === "web-seed") {
      if (have.has(action.index) || webInFlight.has(action.index)) violate("web-seed read of a piece we have or are reading");
      if (webInFlight.size >= config.webSeedConcurrency) violate("more web-seed reads than webSeedConcurrency");
      webInFlight.add(action.index);
    } else if (action.type === "cancel") {
      done(action.index, action.peer);
    }
  };

  const deliver = (index: number, from: PieceSource, corrupt: boolean) => {
    if (from === WEB_SEED) webInFlight.delete(index);
    else done(index, from);
    const verify = scheduler.accepts(index);
    feed({ type: "piece-arrived", index, from });
    if (!verify) return;
    verifying.add(index);
    at(delay(1, 5), () => {
      verifying.delete(index);
      if (corrupt) {
        invalidFrom.set(from, (invalidFrom.get(from) ?? 0) + 1);
        return feed({ type: "piece-invalid", index, from });
      }
      if (!have.has(index)) {
        have.set(index);
        haveCount++;
      }
      feed({ type: "piece-verified", index, from });
    });
  };

  const execute = (action: SchedulerAction) => {
    actions.push(action);
    check(action);
    switch (action.type) {
      case "announce":
        return at(delay(5, 60), () => {
          if (random() < options.announceFailure) return feed({ type: "announce-failed" });
          const start = options.slice?.start ?? 0;
          feed({ type: "announced", response: { interval: 3, peers: shuffledHandout(), webSeedStartPiece: start, webSeedSlicePieces: options.slice?.pieces } });
        });
      case "connect": {
        const peer = byKey.get(action.peer);
        return at(delay(1, 20), () => {
          if (!peer || peer.left || peer.behaviour === "unreachable") return feed({ type: "connect-failed", peer: action.peer, backoff: true });
          peer.connected = true;
          feed({ type: "peer-connected", peer: peer.key, peerId: peer.peerId, inbound: false, bitfield: new Uint8Array(peer.have.bytes) });
        });
      }
      case "request": {
        const peer = byKey.get(action.peer)!;
        if (!peer || peer.left) return;
        if (peer.behaviour === "slow") return; // never answers: the request times out
        if (peer.behaviour === "busy" && random() < 0.6) {
          return at(delay(1, 10), () => {
            if (!inFlight.get(action.index)?.has(peer.key)) return;
            done(action.index, peer.key);
            feed({ type: "rejected", peer: peer.key, index: action.index });
          });
        }
        return at(delay(10, 400), () => {
          if (peer.left || !peer.connected || !inFlight.get(action.index)?.has(peer.key)) return;
          deliver(action.index, peer.key, peer.behaviour === "corrupt");
        });
      }
      case "web-seed":
        webSeedReads++;
        return at(delay(20, 300), () => {
          if (random() < options.webSeedFailure) {
            webInFlight.delete(action.index);
            return feed({ type: "web-seed-failed", index: action.index });
          }
          deliver(action.index, WEB_SEED, false);
        });
      case "drop": {
        const peer = byKey.get(action.peer);
        if (action.ban) {
          banned.add(action.peer);
          if (peer) banned.add(peer.peerId);
        }
        for (const [i, set] of [...inFlight]) if (set.has(action.peer)) done(i, action.peer);
        if (peer) peer.connected = false;
        return;
      }
      case "finished":
        if (haveCount !== options.pieceCount) violations.push(`t=${now}: finished with ${haveCount} of ${options.pieceCount} pieces`);
        finished = true;
        return;
      case "failed":
        failed = action.reason;
        return;
      default:
        return;
    }
  };

  const shuffledHandout = () => [...handout].sort(() => random() - 0.5).filter((h) => !byKey.get(`${h.ip}:4000`)?.left);

  // As the agent drives it: a poll only after an event that may call for one (see handle).
  let pollDue = true;
  const feed = (event: SchedulerEvent) => {
    if (scheduler.handle(event, now)) pollDue = true;
  };

  // Peers' own lives: leavers go, growers gain pieces.
  for (const peer of peers) {
    if (peer.behaviour === "leaver") {
      at(delay(100, 5_000), () => {
        peer.left = true;
        if (peer.connected) {
          peer.connected = false;
          for (const [i, set] of [...inFlight]) if (set.has(peer.key)) done(i, peer.key);
          feed({ type: "peer-left", peer: peer.key });
        }
      });
    }
    if (peer.behaviour === "grower") {
      for (let i = 0; i < options.pieceCount; i++) {
        if (peer.have.has(i)) continue;
        at(delay(100, 20_000), () => {
          if (peer.have.has(i)) return;
          peer.have.set(i);
          if (peer.connected) feed({ type: "have", peer: peer.key, index: i });
        });
      }
    }
  }

  feed({ type: "start", have: [] });
  while (!finished && !failed) {
    if (pollDue) {
      pollDue = false;
      for (const action of scheduler.poll(now)) execute(action);
    }
    if (finished || failed) break;
    const wake = scheduler.nextTimeout();
    queue.sort((a, b) => a.at - b.at || a.seq - b.seq);
    const next = queue[0];
    const nextAt = Math.min(next?.at ?? Number.POSITIVE_INFINITY, wake ?? Number.POSITIVE_INFINITY);
    if (nextAt === Number.POSITIVE_INFINITY || nextAt > horizon) break;
    now = Math.max(now, nextAt);
    if (next && next.at <= now) {
      queue.shift();
      if (typeof next.event === "function") next.event();
      else feed(next.event);
    } else {
      feed({ type: "timer" });
    }
  }
  return { finished, failed, elapsedMs: now, actions, violations, requestsTo, invalidFrom, webSeedReads };
}
