import { BLOCK_BYTES, pieceCount as countPieces, pieceLengthFor } from "../../src/shared/p2p/metainfo.js";
import { P2P_DEFAULTS, SwarmScheduler, WEB_SEED, seededRandom, type PieceSource, type SchedulerAction, type SchedulerEvent, type SchedulerTuning, type PieceSelectionPolicy } from "../../src/shared/p2p/schedule/index.js";
import { ANNOUNCE_INTERVAL_SECONDS, MAX_HANDOUT } from "../../src/worker/tracker/constants.js";
import { ShardedSwarm } from "../../src/worker/tracker/sharded-swarm.js";
import { DEFAULT_TRACKER_SHARDS } from "../../src/worker/env.js";
import { UPLOAD_BACKLOG_BYTES } from "../../src/agent-node/p2p/token-bucket.js";
import { EventQueue } from "./event-queue.js";
import { EDGE, FluidNetwork, type Transfer } from "./network.js";

/** A fleet pulling one blob at once: the shape of the run. Rates in bytes/s, times in seconds. */
export interface FleetOptions {
  hosts: number;
  size: number;
  agentBandwidth: number;
  /** Each cluster's uplink to the edge. */
  wanBandwidth: number;
  /** What the edge serves in all (default: unlimited, the WAN is the bottleneck). */
  edgeBandwidth?: number;
  clusters?: number;
  zones?: number;
  /** Hosts per rack. */
  rackSize?: number;
  /** Fraction of hosts killed at a random moment of the transfer. */
  churn?: number;
  /** Hosts start at a uniform random time in [0, stagger). */
  stagger?: number;
  /** Fraction of hosts whose links run at slowFactor of the others'. */
  slow?: number;
  slowFactor?: number;
  seed?: number;
  /** One-way latencies (ms): within a rack, a zone, a cluster (across zones), across clusters, to the edge. */
  latency?: { rack: number; zone: number; crossZone: number; crossCluster: number; edge: number };
  /** SHA-256 verification rate per host (one core). */
  hashBytesPerSecond?: number;
  tuning?: Partial<SchedulerTuning>;
  /** Piece selection (default the scheduler's: rarest first). */
  policy?: PieceSelectionPolicy;
  /** Web-seed reads a host keeps open at once (default the agent's). */
  webSeedConcurrency?: number;
  /** Pieces requested from one peer at a time (default the agent's). */
  piecesPerPeer?: number;
  /** Bytes a host queues for upload before it rejects requests (default the agent's UPLOAD_BACKLOG_BYTES). */
  backlogBytes?: number;
  /** Network step (ms); default a tenth of a piece's time on an agent link, at most 10 ms. */
  stepMs?: number;
  /** Give up after this much virtual time (s). */
  horizonSeconds?: number;
  /** Tracker objects the swarm is spread over (default the edge's, DEFAULT_TRACKER_SHARDS). */
  shards?: number;
  /** Every host announces from one address (as the devcluster's agents, all on 127.0.0.1): one shard holds them all. */
  oneAddress?: boolean;
  /** The tracker's web-seed readers (default its own). */
  webSeedReaders?: number;
  /** Seconds of credit each link has as a token bucket (the real benchmark's: 0.5); default 0, a pure rate. */
  linkBurstSeconds?: number;
  /** How often `series` samples the fleet (ms of virtual time). */
  sampleMs?: number;
  /** Called with each sample as it is taken, and the events run so far (a long run's progress). */
  onSample?: (sample: FleetRun["series"][number], events: number) => void;
  /** Track every link's load each step (for the invariant test). */
  checkLoad?: boolean;
}

export interface FleetResult {
  hosts: number;
  blob_bytes: number;
  agent_bandwidth: number;
  wan_bandwidth: number;
  bound_s: number;
  p50_s: number;
  p90_s: number;
  p99_s: number;
  p999_s: number;
  max_s: number;
  completed: number;
  wan_bytes: number;
  peer_bytes: number;
  tracker: { announces: number; peak_announces_per_s_per_object: number; objects: number };
  wall_s: number;
  events: number;
}

export interface FleetRun {
  result: FleetResult;
  /** Completion times of the hosts that finished (s, sorted). */
  times: number[];
  /** Hosts killed by churn. */
  killed: number;
  /** Surviving hosts that did not finish (and why, when their scheduler failed). */
  unfinished: { host: number; failed?: string }[];
  /** Hosts whose verified pieces are not exactly the blob's (must be none). */
  badPieces: number;
  peakLoad: number;
  pieceCount: number;
  pieceLength: number;
  polls: number;
  schedulerMs: number;
  /** Announces the tracker refused (caps, rate limits). */
  refusedAnnounces: number;
  /**
   * Each sample (a virtual second unless sampleMs): bytes the hosts received in it as a fraction of
   * what their links allow, hosts done, hosts holding a piece, requests rejected in it, web-seed reads open.
   */
  series: { t: number; downlinkUse: number; done: number; started: number; rejected: number; webReads: number }[];
}

interface Serve {
  to: Host;
  index: number;
  bytes: number;
  transfer?: Transfer;
}

interface Conn {
  dialer: Host;
  acceptor: Host;
  /** Closed: what was sent on it and not yet delivered is lost (a new connection starts with bitfields). */
  open: boolean;
}

interface Host {
  n: number;
  key: string;
  peerId: string;
  ip: string;
  cluster: number;
  zone: number;
  rack: number;
  scheduler: SwarmScheduler;
  startAt: number;
  finishedAt: number | undefined;
  failed: string | undefined;
  started: boolean;
  dead: boolean;
  conns: Map<Host, Conn>;
  /** Requests it serves, per requester, in order (the block server's queue per connection). */
  serving: Map<Host, Serve[]>;
  queuedBytes: number;
  backlogMax: number;
  cpuFreeAt: number;
  verifying: number;
  verified: Uint8Array;
  pollQueued: boolean;
  timerAt: number;
  webReads: Map<number, Transfer | undefined>;
}

const quantile = (sorted: number[], q: number) => (sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!);

/** Runs one fleet to the end (every live host finished or failed, or the horizon). */
export function simulateFleet(options: FleetOptions): FleetRun {
  const wallStart = performance.now();
  const seed = options.seed ?? 1;
  const random = seededRandom(seed ^ 0x2545f491);
  const clusters = options.clusters ?? 1;
  const zones = options.zones ?? 1;
  const rackSize = options.rackSize ?? 40;
  const latency = options.latency ?? { rack: 0.2, zone: 1, crossZone: 2, crossCluster: 30, edge: 30 };
  const hashRate = options.hashBytesPerSecond ?? 1.5e9;
  const pieceLength = pieceLengthFor(options.size);
  const pieces = countPieces(options.size, pieceLength);
  const pieceBytes = (i: number) => Math.min(pieceLength, options.size - i * pieceLength);
  const digest = `sha256:${"ab".repeat(32)}`;
  const stepMs = options.stepMs ?? Math.min(10, Math.max(0.25, (pieceLength / options.agentBandwidth) * 100));
  const horizonMs = (options.horizonSeconds ?? 3600) * 1000;

  const queue = new EventQueue();
  const up = new Float64Array(options.hosts);
  const down = new Float64Array(options.hosts);
  const clusterOf = new Int32Array(options.hosts);
  const hosts: Host[] = [];
  const byKey = new Map<string, Host>();
  for (let n = 0; n < options.hosts; n++) {
    const slow = random() < (options.slow ?? 0);
    const rate = options.agentBandwidth * (slow ? (options.slowFactor ?? 0.25) : 1);
    up[n] = rate;
    down[n] = rate;
    const cluster = n % clusters;
    const inCluster = Math.floor(n / clusters);
    clusterOf[n] = cluster;
    const ip = `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
    const host: Host = {
      n,
      key: `${ip}:4000`,
      peerId: (n + 1).toString(16).padStart(40, "0"),
      ip,
      cluster,
      zone: inCluster % zones,
      rack: Math.floor(inCluster / zones / rackSize),
      scheduler: new SwarmScheduler({
        pieceCount: pieces,
        selfPeerId: (n + 1).toString(16).padStart(40, "0"),
        maxPeers: P2P_DEFAULTS.maxPeersPerSwarm,
        piecesPerPeer: options.piecesPerPeer ?? P2P_DEFAULTS.piecesPerPeer,
        webSeedConcurrency: options.webSeedConcurrency ?? P2P_DEFAULTS.webSeedConcurrency,
        requestTimeoutMs: P2P_DEFAULTS.requestTimeoutSeconds * 1000,
        stallTimeoutMs: P2P_DEFAULTS.stallTimeoutSeconds * 1000,
        random: seededRandom((seed * 7919 + n) >>> 0),
        tuning: options.tuning,
        policy: options.policy,
      }),
      startAt: random() * (options.stagger ?? 0) * 1000,
      finishedAt: undefined,
      failed: undefined,
      started: false,
      dead: false,
      conns: new Map(),
      serving: new Map(),
      queuedBytes: 0,
      // As the agent's UploadBacklog.
      backlogMax: options.backlogBytes ?? UPLOAD_BACKLOG_BYTES,
      cpuFreeAt: 0,
      verifying: 0,
      verified: new Uint8Array(pieces),
      pollQueued: false,
      timerAt: Number.POSITIVE_INFINITY,
      webReads: new Map(),
    };
    hosts.push(host);
    byKey.set(host.key, host);
  }
  const net = new FluidNetwork({ up, down, cluster: clusterOf, wan: Array.from({ length: clusters }, () => options.wanBandwidth), edge: options.edgeBandwidth ?? Number.POSITIVE_INFINITY, burstSeconds: options.linkBurstSeconds ?? 0 }, queue, stepMs, options.checkLoad);

  // The tracker: the real Swarm objects, sharded as the edge shards them, on the virtual clock.
  const shards = options.shards ?? DEFAULT_TRACKER_SHARDS;
  const swarm = new ShardedSwarm(shards, { now: () => queue.now, baseIntervalSeconds: ANNOUNCE_INTERVAL_SECONDS, maxHandout: MAX_HANDOUT, random: seededRandom(seed ^ 0x9e3779b9), webSeedReaders: options.webSeedReaders });
  let announces = 0;
  let refused = 0;
  /** Announces per second and object ("second:shard"). */
  const announcesPerSecond = new Map<string, number>();
  // The objects' alarms: forget the silent, tell the hub what changed.
  const alarm = () => {
    swarm.expire();
    if (live()) queue.after(1000, alarm);
  };
  queue.after(1000, alarm);

  const lat = (a: Host, b: Host) => (a.cluster !== b.cluster ? latency.crossCluster : a.zone !== b.zone ? latency.crossZone : a.rack !== b.rack ? latency.zone : latency.rack);
  let polls = 0;
  let schedulerMs = 0;
  let rejections = 0;

  const feed = (h: Host, event: SchedulerEvent) => {
    if (h.dead || h.finishedAt !== undefined || h.failed) return;
    if (h.scheduler.handle(event, queue.now)) queuePoll(h);
  };
  const queuePoll = (h: Host) => {
    if (h.pollQueued) return;
    h.pollQueued = true;
    queue.after(0, () => poll(h));
  };
  const poll = (h: Host) => {
    h.pollQueued = false;
    if (h.dead || h.finishedAt !== undefined || h.failed) return;
    polls++;
    const t = performance.now();
    const actions = h.scheduler.poll(queue.now);
    const next = h.scheduler.nextTimeout();
    schedulerMs += performance.now() - t;
    for (const action of actions) execute(h, action);
    if (next !== undefined && next < h.timerAt && h.finishedAt === undefined) {
      h.timerAt = next;
      queue.at(next, () => {
        if (h.timerAt !== next) return;
        h.timerAt = Number.POSITIVE_INFINITY;
        feed(h, { type: "timer" });
      });
    }
  };

  const announce = (h: Host, have: number, complete: boolean) => {
    queue.after(latency.edge, () => {
      if (h.dead) return;
      announces++;
      // Each host is its own address, the identity the edge would see (or all one, as in the devcluster).
      const identity = `address:${options.oneAddress ? "10.0.0.1" : h.ip}`;
      const outcome = swarm.announce({ digest, peerId: h.peerId, ip: h.ip, port: 4000, zone: `z${h.zone}`, cluster: `c${h.cluster}`, complete, have, pieceCount: pieces }, identity);
      const key = `${Math.floor(queue.now / 1000)}:${outcome.shard}`;
      announcesPerSecond.set(key, (announcesPerSecond.get(key) ?? 0) + 1);
      if (!outcome.ok) refused++;
      queue.after(latency.edge, () => {
        if (complete) {
          // A seeder re-announces on the tracker's interval while it seeds.
          const interval = outcome.ok ? outcome.response.interval : ANNOUNCE_INTERVAL_SECONDS;
          if (!h.dead) queue.after(interval * 1000, () => announce(h, pieces, true));
          return;
        }
        feed(h, outcome.ok ? { type: "announced", response: outcome.response } : { type: "announce-failed" });
      });
    });
  };

  const close = (c: Conn, by: Host) => {
    const other = c.dialer === by ? c.acceptor : c.dialer;
    c.open = false;
    by.conns.delete(other);
    other.conns.delete(by);
    cancelServes(by, other);
    cancelServes(other, by);
    queue.after(lat(by, other), () => feed(other, { type: "peer-left", peer: by.key }));
  };
  const cancelServes = (server: Host, to: Host, index?: number) => {
    const list = server.serving.get(to);
    if (!list) return;
    const keep: Serve[] = [];
    let headGone = false;
    list.forEach((s, k) => {
      if (index !== undefined && s.index !== index) return keep.push(s);
      if (s.transfer) {
        server.queuedBytes -= s.transfer.remaining;
        net.stop(s.transfer);
      } else server.queuedBytes -= s.bytes;
      if (k === 0) headGone = true;
    });
    if (keep.length === 0) server.serving.delete(to);
    else {
      server.serving.set(to, keep);
      if (headGone) serveNext(server, to);
    }
  };
  const serveNext = (server: Host, to: Host) => {
    const list = server.serving.get(to);
    const head = list?.[0];
    if (!head || head.transfer) return;
    const l = lat(server, to);
    head.transfer = net.start(server.n, to.n, head.bytes, () => {
      server.queuedBytes -= head.bytes;
      list!.shift();
      if (list!.length === 0) server.serving.delete(to);
      else serveNext(server, to);
      queue.after(l, () => {
        if (!to.conns.has(server)) return;
        arrive(to, head.index, server.key);
      });
    });
  };
  const arrive = (h: Host, index: number, from: PieceSource) => {
    if (h.dead || h.finishedAt !== undefined || h.failed) return;
    const verify = h.scheduler.accepts(index);
    feed(h, { type: "piece-arrived", index, from });
    if (!verify) return;
    h.verifying++;
    h.cpuFreeAt = Math.max(queue.now, h.cpuFreeAt) + (pieceBytes(index) / hashRate) * 1000;
    queue.at(h.cpuFreeAt, () => {
      h.verifying--;
      if (h.dead) return;
      h.verified[index] = 1;
      feed(h, { type: "piece-verified", index, from });
    });
  };

  const execute = (h: Host, action: SchedulerAction) => {
    switch (action.type) {
      case "announce":
        return announce(h, action.have, false);
      case "connect": {
        const to = byKey.get(action.peer);
        if (!to) return queue.after(1000, () => feed(h, { type: "connect-failed", peer: action.peer, backoff: true }));
        const l = lat(h, to);
        // SYN, then the handshake and bitfields: about three one-way trips.
        return queue.after(3 * l, () => {
          if (h.dead) return;
          if (to.dead || !to.started) return feed(h, { type: "connect-failed", peer: action.peer, backoff: true });
          const c: Conn = { dialer: h, acceptor: to, open: true };
          h.conns.set(to, c);
          to.conns.set(h, c);
          feed(h, { type: "peer-connected", peer: to.key, peerId: to.peerId, inbound: false, bitfield: new Uint8Array(to.scheduler.have.bytes) });
          feed(to, { type: "peer-connected", peer: h.key, peerId: h.peerId, inbound: true, bitfield: new Uint8Array(h.scheduler.have.bytes) });
        });
      }
      case "request": {
        const to = byKey.get(action.peer)!;
        const l = lat(h, to);
        return queue.after(l, () => {
          if (to.dead || !to.conns.has(h)) return;
          const bytes = pieceBytes(action.index);
          const first = Math.min(bytes, BLOCK_BYTES);
          if (!to.scheduler.has(action.index) || (to.queuedBytes > 0 && to.queuedBytes + first > to.backlogMax)) {
            rejections++;
            return queue.after(l, () => feed(h, { type: "rejected", peer: to.key, index: action.index }));
          }
          to.queuedBytes += bytes;
          let list = to.serving.get(h);
          if (!list) to.serving.set(h, (list = []));
          list.push({ to: h, index: action.index, bytes });
          if (list.length === 1) serveNext(to, h);
        });
      }
      case "cancel": {
        const to = byKey.get(action.peer)!;
        return queue.after(lat(h, to), () => cancelServes(to, h, action.index));
      }
      case "web-seed": {
        const index = action.index;
        h.webReads.set(index, undefined);
        return queue.after(latency.edge, () => {
          if (h.dead) return;
          h.webReads.set(
            index,
            net.start(EDGE, h.n, pieceBytes(index), () => {
              h.webReads.delete(index);
              queue.after(latency.edge, () => arrive(h, index, WEB_SEED));
            }),
          );
        });
      }
      case "drop": {
        const to = byKey.get(action.peer);
        const c = to && h.conns.get(to);
        if (c) close(c, h);
        return;
      }
      case "have": {
        // One wake-up per latency class, not one per connection: a have goes to every peer.
        const byLatency: Conn[][] = [];
        const latencies: number[] = [];
        for (const [other, c] of h.conns) {
          if (h.scheduler.peerHolds(other.key, action.index)) continue; // as the agent does
          const l = lat(h, other);
          let k = latencies.indexOf(l);
          if (k < 0) {
            k = latencies.push(l) - 1;
            byLatency.push([]);
          }
          byLatency[k]!.push(c);
        }
        // Handlers only read an event: one for every receiver.
        const event: SchedulerEvent = { type: "have", peer: h.key, index: action.index };
        for (let k = 0; k < latencies.length; k++) {
          const list = byLatency[k]!;
          queue.after(latencies[k]!, () => {
            for (const c of list) {
              if (!c.open) continue;
              const other = c.dialer === h ? c.acceptor : c.dialer;
              if (other.dead || other.finishedAt !== undefined || other.failed) continue;
              if (other.scheduler.handle(event, queue.now)) queuePoll(other);
            }
          });
        }
        return;
      }
      case "finished": {
        h.finishedAt = queue.now;
        // As the session: outbound connections close, inbound ones stay and learn we are complete.
        for (const [other, c] of [...h.conns]) {
          if (c.dialer === h) close(c, h);
          else queue.after(lat(h, other), () => feed(other, { type: "peer-complete", peer: h.key }));
        }
        announce(h, pieces, true);
        return;
      }
      case "failed":
        h.failed = action.reason;
        for (const c of [...h.conns.values()]) close(c, h);
        return;
    }
  };

  // Lives: start (staggered), and churn kills some mid-transfer.
  const bound = Math.max(options.size / options.wanBandwidth, options.size / options.agentBandwidth);
  let killed = 0;
  for (const h of hosts) {
    queue.at(h.startAt, () => {
      h.started = true;
      feed(h, { type: "start", have: [] });
    });
    if (random() < (options.churn ?? 0)) {
      killed++;
      queue.at(h.startAt + random() * bound * 1000 * 0.8, () => {
        if (h.finishedAt !== undefined) return;
        h.dead = true;
        for (const c of [...h.conns.values()]) close(c, h);
        for (const t of h.webReads.values()) if (t) net.stop(t);
      });
    }
  }

  const live = () => hosts.some((h) => !h.dead && h.finishedAt === undefined && !h.failed);
  let remaining = options.hosts;
  const series: FleetRun["series"] = [];
  const sampleMs = options.sampleMs ?? 1000;
  let sampleAt = sampleMs;
  let lastDown = 0;
  let lastRejections = 0;
  let linkSum = 0;
  for (const d of down) linkSum += d;
  while (queue.now < horizonMs) {
    if (queue.now >= sampleAt) {
      let total = 0;
      for (const b of net.bytesDown) total += b;
      let done = 0;
      let started = 0;
      let webReads = 0;
      for (const h of hosts) {
        if (h.finishedAt !== undefined) done++;
        if (h.scheduler.haveTotal > 0) started++;
        webReads += h.webReads.size;
      }
      series.push({ t: sampleAt / 1000, downlinkUse: (total - lastDown) / linkSum / (sampleMs / 1000), done, started, rejected: rejections - lastRejections, webReads });
      options.onSample?.(series.at(-1)!, queue.processed);
      lastRejections = rejections;
      lastDown = total;
      sampleAt += sampleMs;
    }
    if (!net.busy) {
      const next = queue.peekTime();
      if (!Number.isFinite(next)) break;
      queue.runUntil(next);
    } else {
      const t0 = queue.now;
      net.step(t0);
      queue.runUntil(t0 + stepMs);
    }
    // Cheap most of the time: only look when something could have ended.
    if (--remaining <= 0) {
      remaining = options.hosts;
      if (!live()) break;
    }
  }

  const times = hosts
    .filter((h) => !h.dead && h.finishedAt !== undefined)
    .map((h) => (h.finishedAt! - h.startAt) / 1000)
    .sort((a, b) => a - b);
  const unfinished = hosts.filter((h) => !h.dead && h.finishedAt === undefined).map((h) => ({ host: h.n, failed: h.failed }));
  const badPieces = hosts.filter((h) => h.finishedAt !== undefined && h.verified.some((v) => v !== 1)).length;
  let wanBytes = 0;
  for (const b of net.wanBytes) wanBytes += b;
  const result: FleetResult = {
    hosts: options.hosts,
    blob_bytes: options.size,
    agent_bandwidth: options.agentBandwidth,
    wan_bandwidth: options.wanBandwidth,
    bound_s: bound,
    p50_s: quantile(times, 0.5),
    p90_s: quantile(times, 0.9),
    p99_s: quantile(times, 0.99),
    p999_s: quantile(times, 0.999),
    max_s: times.at(-1) ?? Number.NaN,
    completed: times.length,
    wan_bytes: wanBytes,
    peer_bytes: net.peerBytes,
    tracker: { announces, peak_announces_per_s_per_object: Math.max(0, ...announcesPerSecond.values()), objects: shards },
    wall_s: (performance.now() - wallStart) / 1000,
    events: queue.processed,
  };
  return { result, times, killed, unfinished, badPieces, peakLoad: net.peakLoad, pieceCount: pieces, pieceLength, polls, schedulerMs, refusedAnnounces: refused, series };
}
