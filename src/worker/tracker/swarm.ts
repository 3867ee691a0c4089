import type { AnnounceRequest, AnnounceResponse, HandoutPeer } from "../../shared/api/announce.js";
import { refusedAddress } from "../../shared/p2p/peer-address.js";
import { RING_SLOTS, firstPointOfPiece, pieceAtPoint, ringPoint } from "../../shared/p2p/web-seed-ring.js";
import { Buckets, zoneKey } from "./buckets.js";
import { AnnounceCalendar } from "./calendar.js";
import { ExpiryWheel } from "./expiry-wheel.js";
import { RemoteView, SHARD_SAMPLE_PEERS, type RemotePeer, type ShardSummary } from "./shard-view.js";
import { RingIndex } from "./ring-index.js";

export { ringPosition } from "../../shared/p2p/web-seed-ring.js";

/**
 * The swarm of one blob, as one tracker object holds it: who has the blob (seeders), who is
 * fetching it (leechers), what each announcer is handed, and which web-seed slice is whose. Pure,
 * synchronous logic with an injected clock and randomness: the Durable Object around it
 * (tracker.ts) only routes, alarms and reports, and the fleet simulator drives it directly.
 *
 * Cost. An announce costs O(handout + log swarm), never a pass over the swarm:
 * - handouts draw from buckets (seeders and leechers, each by zone, by cluster, and all), kept as
 *   sets with O(1) random draws: own zone first, then own cluster, then the rest, seeders first;
 * - expiry is bucketed by the second (ExpiryWheel): an announce or the alarm drops only what fell due;
 * - web-seed slices come from a Fenwick tree over the leechers' ring points (RingIndex).
 *
 * Load. The interval asked for grows with the swarm, so that the steady announce rate of one
 * object stays near `targetAnnouncesPerSecond` (n peers / interval), and `minInterval` tells agents
 * how often they may announce at most (refreshing a web-seed slice, a quick second announce).
 * A peer is forgotten three of its intervals after its last announce.
 *
 * Trust (SECURITY.md, "the tracker"). Every announce comes with the identity the edge saw (the
 * authenticated account, else the source address): a peer id belongs to the identity that first
 * announced it, and only that identity may update or stop it until it is forgotten. Addresses that
 * would point peers at a host's own services (loopback, link-local, metadata, unspecified) are
 * refused unless allowed (a devcluster on 127.0.0.1). An object holds at most `maxPeers` peers; an
 * address (an identity without an account) at most `maxPeersPerAddress` of them; each peer may
 * re-announce ten times at once, then twice per minInterval.
 */
export interface SwarmOptions {
  now: () => number;
  random?: () => number;
  /** The interval (s) of a small swarm, and the shortest one asked for. */
  baseIntervalSeconds: number;
  /** Announces per second one object aims to take in the steady state; the interval grows to keep it. */
  targetAnnouncesPerSecond?: number;
  /** The longest interval (s) ever asked for. */
  maxIntervalSeconds?: number;
  /** Most peers handed out in one answer. */
  maxHandout: number;
  /** Most peers one object holds; newcomers past it get a handout but are not handed out themselves. */
  maxPeers?: number;
  /** Most peers one source address (an announcer without an account) may hold in the object. */
  maxPeersPerAddress?: number;
  /** Accept loopback peer addresses (the devcluster and tests run on 127.0.0.1). */
  allowLoopback?: boolean;
  /**
   * This object is shard `index` of `count` of the swarm (shard-router.ts): it learns of the other
   * shards through `summary()`/`learn()` (shard-view.ts), hands out some of their peers, and tiles
   * its share of the ring with its leechers.
   */
  shard?: { index: number; count: number };
  /**
   * Leechers of the whole swarm that hold web-seed slices at once (each object of a sharded swarm
   * its share, at least one); the others fetch from peers. 260 hosts starting together, each with a
   * one-piece slice, shared the WAN 260 ways: every first piece landed after 2.2 s, with the
   * downlinks idle until then (simulated); 16 readers bring the first pieces in 0.25 s and still
   * fill any WAN up to 16 times a host's link. A slice holder keeps its slot until it completes or
   * leaves; a freed slot goes to the next leecher to announce.
   */
  webSeedReaders?: number;
}

export const SWARM_DEFAULTS = {
  targetAnnouncesPerSecond: 400,
  maxIntervalSeconds: 120,
  maxPeers: 50_000,
  maxPeersPerAddress: 256,
  webSeedReaders: 16,
} as const;

/**
 * The interval (s) for a swarm object holding `peers`: the base interval while that keeps the
 * steady rate (peers / interval) under the target, else as long as it takes, up to the maximum.
 */
export function intervalFor(
  peers: number,
  { baseIntervalSeconds, targetAnnouncesPerSecond = SWARM_DEFAULTS.targetAnnouncesPerSecond, maxIntervalSeconds = SWARM_DEFAULTS.maxIntervalSeconds }: Pick<SwarmOptions, "baseIntervalSeconds" | "targetAnnouncesPerSecond" | "maxIntervalSeconds">,
): number {
  return Math.min(maxIntervalSeconds, Math.max(baseIntervalSeconds, Math.ceil(peers / targetAnnouncesPerSecond)));
}

/** The least time (s) between two announces of one peer: 1 s in a small swarm, a quarter interval in a big one. */
export function minIntervalFor(peers: number, options: Pick<SwarmOptions, "baseIntervalSeconds" | "targetAnnouncesPerSecond" | "maxIntervalSeconds">): number {
  const interval = intervalFor(peers, options);
  return interval <= options.baseIntervalSeconds ? 1 : Math.ceil(interval / 4);
}

/** How an announce was taken: answered, or refused with a status and a reason for the announcer. */
export type AnnounceOutcome = { ok: true; response: AnnounceResponse } | { ok: false; status: 403 | 429; reason: string };

interface PeerEntry extends HandoutPeer {
  identity: string;
  /** Its place on the web-seed ring while it is a leecher that fetches the whole blob. */
  slot: number | undefined;
  /** False: it holds part of the blob and fetches only what its readers ask (no web-seed slice). */
  fetching: boolean;
  bucket: string;
  /** The second its next announce was booked in (AnnounceCalendar). */
  dueSecond: number;
  /** Re-announces it may make now (see spend). */
  tokens: number;
  refilledAt: number;
}


/**
 * Re-announces a peer may make at once, and per minInterval after that. Two per minInterval, not
 * one: an agent's leech session and its seeding announcer share its peer id, and agents that do not
 * know minInterval yet refresh a web-seed slice once a second.
 */
const PEER_ANNOUNCE_BURST = 10;
const PEER_ANNOUNCES_PER_MIN_INTERVAL = 2;

/** Part of a handout kept for peers of other shards (when there are any), so the shards' peers mix. */
const REMOTE_HANDOUT_SHARE = 0.2;
/** Least time between two trades of summaries with the hub while the shard changes. */
export const SHARD_EXCHANGE_MS = 1_000;

export class Swarm {
  private readonly peers = new Map<string, PeerEntry>();
  private readonly seeders = new Buckets<PeerEntry>();
  private readonly leechers = new Buckets<PeerEntry>();
  private readonly remote = new RemoteView();
  /** Joins, leaves and completions since the last summary. */
  private changed = true;
  /** Peers this shard held when it last told the hub. */
  private postedPeers = 0;
  private readonly calendar: AnnounceCalendar;
  private readonly ring = new RingIndex();
  private readonly wheel: ExpiryWheel<PeerEntry>;
  /** Peers held per identity. */
  private readonly identities = new Map<string, number>();
  private readonly random: () => number;
  private readonly settings: Required<Omit<SwarmOptions, "now" | "random" | "shard">> & { shard: { index: number; count: number } };
  /** Leechers that fetch the whole blob (on the ring or waiting for a place on it). */
  private fetchingLeechers = 0;
  /** When this object's first peer of the current swarm joined (undefined while empty). */
  private formedAt: number | undefined;

  constructor(private readonly options: SwarmOptions) {
    this.random = options.random ?? Math.random;
    this.settings = {
      baseIntervalSeconds: options.baseIntervalSeconds,
      targetAnnouncesPerSecond: options.targetAnnouncesPerSecond ?? SWARM_DEFAULTS.targetAnnouncesPerSecond,
      maxIntervalSeconds: options.maxIntervalSeconds ?? SWARM_DEFAULTS.maxIntervalSeconds,
      maxHandout: options.maxHandout,
      maxPeers: Math.min(options.maxPeers ?? SWARM_DEFAULTS.maxPeers, 1 << 16),
      maxPeersPerAddress: options.maxPeersPerAddress ?? SWARM_DEFAULTS.maxPeersPerAddress,
      allowLoopback: options.allowLoopback ?? false,
      shard: options.shard ?? { index: 0, count: 1 },
      webSeedReaders: options.webSeedReaders ?? SWARM_DEFAULTS.webSeedReaders,
    };
    this.wheel = new ExpiryWheel(options.now());
    this.calendar = new AnnounceCalendar(this.settings.targetAnnouncesPerSecond);
  }

  get shard(): { index: number; count: number } {
    return this.settings.shard;
  }

  get size(): number {
    return this.peers.size;
  }

  /**
   * The interval (s) asked of every announcer now: grows with the whole swarm (all its shards), so
   * that the swarm's announce rate, and so what it costs in requests, stays near the target.
   */
  interval(): number {
    return intervalFor(this.peers.size + this.remote.peers, this.settings);
  }

  /** The least time (s) between two announces of one peer. */
  minInterval(): number {
    return minIntervalFor(this.peers.size + this.remote.peers, this.settings);
  }

  /** A shard that has never heard from the hub asks it before its first answer (then knows the swarm). */
  needsView(): boolean {
    return this.settings.shard.count > 1 && this.remote.at === undefined;
  }

  /**
   * Should this shard trade summaries with the hub now (after an answer, or on its alarm)? Never
   * when alone; at once when its first peers are not on the hub yet; then at most every
   * SHARD_EXCHANGE_MS while it changes, and every quarter interval while it holds peers (to learn
   * of the other shards, and so the hub does not forget it): at most one trade a second per shard,
   * whatever its announce rate, and so at most `count` a second for the hub.
   */
  exchangeDue(): boolean {
    if (this.settings.shard.count <= 1) return false;
    if (this.remote.at === undefined) return true;
    const age = this.options.now() - this.remote.at;
    if (this.changed && (this.postedPeers === 0 || age >= SHARD_EXCHANGE_MS)) return true;
    return this.peers.size > 0 && age >= Math.max(SHARD_EXCHANGE_MS, this.interval() * 250);
  }

  /** When a change not yet told to the hub may be (for the alarm), or undefined. */
  nextExchangeAt(): number | undefined {
    if (this.settings.shard.count <= 1 || !this.changed || this.remote.at === undefined) return undefined;
    return this.remote.at + SHARD_EXCHANGE_MS;
  }

  /**
   * What this shard tells the others: counts and a few random peers, seeders first. O(sample).
   * `peek`: for the hub's answer to another shard, which is not this shard's own trade.
   */
  summary(peek = false): ShardSummary {
    if (!peek) {
      this.changed = false;
      this.postedPeers = this.peers.size;
    }
    const sample: HandoutPeer[] = [];
    for (const role of [this.seeders, this.leechers]) {
      role.all.draw(this.random, (p) => {
        sample.push(handoutOf(p));
        return sample.length < SHARD_SAMPLE_PEERS;
      });
      if (sample.length >= SHARD_SAMPLE_PEERS) break;
    }
    return {
      shard: this.settings.shard.index,
      peers: this.peers.size,
      leechers: this.ring.size,
      holders: this.leechers.size - this.fetchingLeechers,
      fetching: this.fetchingLeechers,
      sample,
      expiresAt: this.options.now() + (3 * this.interval() + 1) * 1000,
    };
  }

  /** The other shards' summaries, from the hub (undefined: it could not be reached). */
  learn(others: readonly ShardSummary[] | undefined): void {
    if (others) this.remote.learn(others, this.options.now(), this.settings.shard.index * 2);
    else this.remote.failed(this.options.now());
  }

  announce(request: AnnounceRequest, identity: string): AnnounceOutcome {
    const now = this.options.now();
    this.expire();
    const existing = this.peers.get(request.peerId);
    if (existing && existing.identity !== identity) {
      return { ok: false, status: 403, reason: "this peer id belongs to another announcer" };
    }
    if (existing && !this.spend(existing, now)) return { ok: false, status: 429, reason: "too many announces; keep to the interval" };
    if (request.stopped) {
      if (existing) this.remove(existing);
      return { ok: true, response: { interval: this.interval(), minInterval: this.minInterval(), peers: [], webSeedStartPiece: 0, webSeedSlicePieces: 0 } };
    }
    const refused = refusedAddress(request.ip, { allowLoopback: this.settings.allowLoopback });
    if (refused) return { ok: false, status: 403, reason: `peer address ${request.ip} is ${refused}` };

    let entry = existing;
    if (!entry) {
      if (identity.startsWith("address:") && (this.identities.get(identity) ?? 0) >= this.settings.maxPeersPerAddress) {
        return { ok: false, status: 429, reason: `at most ${this.settings.maxPeersPerAddress} peers per address in a swarm` };
      }
      if (this.peers.size >= this.settings.maxPeers) {
        // Full: answered, so it can fetch, but not held (nor handed out) until room is made.
        return { ok: true, response: this.answer(request, undefined) };
      }
      entry = this.add(request, identity, now);
    } else {
      this.update(entry, request);
    }
    const response = this.answer(request, entry);
    // The next announce, booked in a second with room: a newcomer's quick second one (agents send
    // it after minInterval) anywhere up to the interval, a re-announce up to a quarter later.
    // An announce that comes when booked was counted then; any other is counted now.
    if (entry.dueSecond !== Math.floor(now / 1000)) this.calendar.arrived(now);
    if (existing) response.interval = this.calendar.book(now, response.interval, Math.ceil(response.interval * 1.25));
    else response.minInterval = this.calendar.book(now, response.minInterval!, response.interval);
    entry.dueSecond = AnnounceCalendar.secondOf(now, existing ? response.interval : response.minInterval!);
    this.wheel.set(entry, now + (3 * response.interval + 1) * 1000);
    return { ok: true, response };
  }

  /** Forgets peers that stopped announcing; returns how many. */
  expire(): number {
    const gone = this.wheel.expire(this.options.now());
    for (const peer of gone) this.remove(peer);
    return gone.length;
  }

  /** When the next peer would expire (for the alarm), within a second. */
  nextExpiry(): number | undefined {
    return this.wheel.next();
  }

  snapshot(): { peers: number; seeders: number } {
    return { peers: this.peers.size, seeders: this.seeders.all.size };
  }

  private answer(request: AnnounceRequest, entry: PeerEntry | undefined): AnnounceResponse {
    return {
      interval: this.interval(),
      minInterval: this.minInterval(),
      peers: this.handout(request),
      ...this.slice(entry, request.pieceCount),
    };
  }

  private add(request: AnnounceRequest, identity: string, now: number): PeerEntry {
    const entry: PeerEntry = {
      peerId: request.peerId,
      ip: request.ip,
      port: request.port,
      zone: request.zone,
      cluster: request.cluster,
      complete: request.complete,
      have: request.have,
      fetching: request.fetching ?? true,
      identity,
      slot: undefined,
      bucket: zoneKey(request.cluster, request.zone),
      tokens: PEER_ANNOUNCE_BURST,
      dueSecond: -1,
      refilledAt: now,
    };
    if (this.peers.size === 0) this.formedAt = now;
    this.peers.set(entry.peerId, entry);
    this.changed = true;
    this.identities.set(identity, (this.identities.get(identity) ?? 0) + 1);
    this.place(entry);
    return entry;
  }

  private update(entry: PeerEntry, request: AnnounceRequest): void {
    const fetching = request.fetching ?? true;
    const moved = entry.complete !== request.complete || entry.fetching !== fetching || entry.zone !== request.zone || entry.cluster !== request.cluster;
    if (moved) {
      this.unplace(entry);
      this.changed = true;
    }
    entry.ip = request.ip;
    entry.port = request.port;
    entry.zone = request.zone;
    entry.cluster = request.cluster;
    entry.complete = request.complete;
    entry.have = request.have;
    entry.fetching = fetching;
    entry.bucket = zoneKey(request.cluster, request.zone);
    if (moved) this.place(entry);
    else this.takeSlot(entry);
  }

  /** Puts a peer in its buckets, and a leecher that fetches the whole blob on the ring. */
  private place(entry: PeerEntry): void {
    (entry.complete ? this.seeders : this.leechers).add(entry);
    if (!entry.complete && entry.fetching) this.fetchingLeechers++;
    this.takeSlot(entry);
  }

  /**
   * Ring places this object gives at most: in a sharded swarm, its share of webSeedReaders by its
   * part of the swarm's fetching leechers (at least one), so a swarm spread over 64 shards has one
   * reader per shard. Until the hub's view is newer than this shard's swarm (it formed before the
   * other shards had posted), an even share, or as many as the announcer's address has peers here
   * (they are all routed here: a devcluster, or hosts behind one NAT without accounts). Places
   * given are never taken back: a reader that loses its slice has read part of it, and the slices
   * of the others move. (Shards that knew of no other gave every leecher a place and took them
   * back as they learned: 32 readers in a swarm of 2 shards, slices settled after 3 s, simulated.)
   */
  private ringCap(entry?: PeerEntry): number {
    const { webSeedReaders: readers, shard } = this.settings;
    if (shard.count <= 1) return readers;
    if (!this.viewIsCurrent()) {
      // The peers of one address are routed here all together (shard-router.ts): their share is
      // known without the view (a devcluster, or hosts behind one NAT without accounts).
      const group = entry?.identity.startsWith("address:") ? (this.identities.get(entry.identity) ?? 0) : 0;
      return Math.max(1, Math.ceil(readers / shard.count), Math.min(readers, group));
    }
    const own = this.fetchingLeechers;
    return Math.max(1, Math.ceil((readers * own) / Math.max(1, own + this.remote.fetching)));
  }

  /**
   * Has this shard heard from the hub well after its swarm formed, so that the other shards'
   * counts in its view are from after the formation too (they post at most once a second)?
   */
  private viewIsCurrent(): boolean {
    const viewAt = this.remote.at;
    return this.formedAt !== undefined && viewAt !== undefined && viewAt >= this.formedAt + 2 * SHARD_EXCHANGE_MS;
  }

  /** A leecher fetching the whole blob takes a place on the ring when one is free. */
  private takeSlot(entry: PeerEntry): void {
    if (entry.complete || !entry.fetching || entry.slot !== undefined || this.ring.size >= this.ringCap(entry)) return;
    entry.slot = this.ring.take();
    if (entry.slot !== undefined) this.changed = true;
  }

  private unplace(entry: PeerEntry): void {
    (entry.complete ? this.seeders : this.leechers).delete(entry);
    if (!entry.complete && entry.fetching) this.fetchingLeechers--;
    if (entry.slot !== undefined) this.ring.release(entry.slot);
    entry.slot = undefined;
  }

  private remove(entry: PeerEntry): void {
    this.unplace(entry);
    this.peers.delete(entry.peerId);
    if (this.peers.size === 0) this.formedAt = undefined;
    this.changed = true;
    this.wheel.delete(entry);
    const held = (this.identities.get(entry.identity) ?? 1) - 1;
    if (held > 0) this.identities.set(entry.identity, held);
    else this.identities.delete(entry.identity);
  }

  /**
   * Takes one re-announce from a peer's budget: PEER_ANNOUNCE_BURST at once, refilled by
   * PEER_ANNOUNCES_PER_MIN_INTERVAL per minInterval. An agent keeping to the pace asked never runs dry; a flood of re-announces is
   * refused before it costs a handout. (New peer ids are bounded by the caps instead, so a fleet
   * joining at once is never refused; an identity's announce rate is its peers' budgets together.)
   */
  private spend(entry: PeerEntry, now: number): boolean {
    entry.tokens = Math.min(PEER_ANNOUNCE_BURST, entry.tokens + ((now - entry.refilledAt) * PEER_ANNOUNCES_PER_MIN_INTERVAL) / (this.minInterval() * 1000));
    entry.refilledAt = now;
    if (entry.tokens < 1) return false;
    entry.tokens--;
    return true;
  }

  /**
   * A leecher's web-seed start and slice. The leecher whose ring point comes first under a piece
   * owns it, up to the next piece that has a leecher: so the live leechers' slices tile this
   * object's arc exactly (every piece one owner, none two). Leechers sharing a piece with an
   * earlier point get nothing to fetch from the edge; the first leecher on the arc starts at the
   * arc's first piece, so no piece before it is left without an owner.
   */
  private slice(entry: PeerEntry | undefined, pieceCount: number): Slice {
    if (!entry || pieceCount === 0) return NO_SLICE;
    if (entry.slot === undefined) return { webSeedStartPiece: ownStart(entry.peerId, pieceCount), webSeedSlicePieces: 0, webSeedSettledPieces: 0 };
    const arc = this.remote.arc(this.settings.shard.index, this.settings.shard.count, this.ring.size, pieceCount);
    if (arc.end <= arc.first) return { webSeedStartPiece: arc.first % pieceCount, webSeedSlicePieces: 0, webSeedSettledPieces: 0 };
    const point = ringPoint(entry.slot);
    const piece = pieceAtPoint(point, arc);
    if (this.ring.firstAtOrAfter(firstPointOfPiece(piece, arc)) !== point) return { webSeedStartPiece: piece, webSeedSlicePieces: 0, webSeedSettledPieces: 0 };
    const next = this.ring.firstAtOrAfter(firstPointOfPiece(piece + 1, arc));
    const end = next === undefined ? arc.end : pieceAtPoint(next, arc);
    const start = this.ring.first() === point ? arc.first : piece;
    // Newcomers take the free slots below the cap, smallest first: the slice shrinks at most to
    // the next of those points after ours (a leaver's part goes to its neighbour, never ours away).
    // A shard's arc moves as the other shards' counts do: its slices are settled once its view is
    // current and its places are all taken (the others' counts then change little), not before.
    if (this.settings.shard.count > 1) {
      const settled = this.viewIsCurrent() && this.ring.size >= this.ringCap(entry);
      return { webSeedStartPiece: start, webSeedSlicePieces: end - start, webSeedSettledPieces: settled ? end - start : 0 };
    }
    let full = RING_SLOTS;
    const cap = this.ringCap();
    for (let slot = 0; slot < cap; slot++) {
      const p = ringPoint(slot);
      if (p > point && p < full) full = p;
    }
    const settledEnd = Math.min(end, full === RING_SLOTS ? arc.end : pieceAtPoint(full, arc));
    return { webSeedStartPiece: start, webSeedSlicePieces: end - start, webSeedSettledPieces: Math.max(0, settledEnd - start) };
  }

  /**
   * A bounded, shuffled list, never the requester: seeders before leechers, and within each the
   * requester's own zone and cluster first, then its cluster, then the rest (Buckets.drawInto:
   * O(handout)). A sharded swarm's handout keeps a fifth for peers of other shards, from the hub's
   * samples, and fills up from either side when the other runs short.
   */
  private handout(requester: AnnounceRequest): HandoutPeer[] {
    const out: HandoutPeer[] = [];
    const limit = this.settings.maxHandout;
    const taken = new Set<string>([requester.peerId]);
    const remoteSize = this.remote.seeders.size + this.remote.leechers.size;
    const local = limit - (remoteSize > 0 ? Math.min(remoteSize, Math.ceil(limit * REMOTE_HANDOUT_SHARE)) : 0);
    const draw = <T extends PeerEntry | RemotePeer>(role: Buckets<T>, upTo: number) => role.drawInto(out, upTo, taken, requester.cluster, requester.zone, this.random, handoutOf);
    draw(this.seeders, local);
    draw(this.remote.seeders, limit);
    draw(this.leechers, local);
    draw(this.remote.leechers, limit);
    draw(this.seeders, limit);
    draw(this.leechers, limit);
    return out;
  }
}

interface Slice {
  webSeedStartPiece: number;
  webSeedSlicePieces: number;
  webSeedSettledPieces: number;
}
const NO_SLICE: Slice = { webSeedStartPiece: 0, webSeedSlicePieces: 0, webSeedSettledPieces: 0 };

/**
 * Where a leecher without a place on the ring starts (from its peer id, hex): it takes pieces
 * nobody has after a wait that grows with their distance from here, so that a dead reader's pieces
 * are read by the few hosts nearest before them, not by every host at once, nor only after hundreds
 * of seconds by hosts that all measured from piece 0.
 */
function ownStart(peerId: string, pieceCount: number): number {
  return parseInt(peerId.slice(-8), 16) % pieceCount || 0;
}

function handoutOf(p: HandoutPeer): HandoutPeer {
  return { peerId: p.peerId, ip: p.ip, port: p.port, zone: p.zone, cluster: p.cluster, complete: p.complete, have: p.have };
}
