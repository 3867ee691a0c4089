import type { AnnounceRequest, AnnounceResponse } from "../src/shared/api/announce.js";
import { ANNOUNCE_INTERVAL_SECONDS, MAX_HANDOUT } from "../src/worker/tracker/constants.js";
import { ShardedSwarm } from "../src/worker/tracker/sharded-swarm.js";

/**
 * A fleet's announces against the real tracker logic (ShardedSwarm: the edge's routing, shards,
 * hub trades and announce calendar), on a virtual clock: `hosts` agents start within
 * `startWindowSeconds`, download for `downloadSeconds`, then seed. Each announces as the agent
 * does: at once, again after max(minInterval, 1 s) (the scheduler's quick second announce, capped
 * by the interval), then every interval; the announce of completion at once, or within the last
 * minInterval when that is over a second (announcer.ts), then every interval. Counts what reaches
 * each tracker object per second. (Not modelled: web-seed slice refreshes, which the tracker
 * bounds by minInterval, and stops.)
 */
export interface BurstOptions {
  hosts: number;
  shards: number;
  startWindowSeconds: number;
  downloadSeconds: number;
  /** Virtual seconds simulated. */
  seconds: number;
  seed?: number;
  /** Another tracker to drive (e.g. main's Swarm, as one object): defaults to this tree's ShardedSwarm. */
  tracker?: (now: () => number, random: () => number) => BurstTracker;
}

export interface BurstTracker {
  announce(request: AnnounceRequest, identity: string): ({ ok: true; response: AnnounceResponse } | { ok: false }) & { shard: number };
  exchanges?: number;
}

export interface BurstReport {
  announces: number;
  refused: number;
  /** Most announces one object took in one second, and when. */
  peakPerObject: number;
  peakAtSecond: number;
  /** Most announces one object took in one second after the first `startWindowSeconds + 5` s. */
  steadyPeakPerObject: number;
  /** Object-to-object calls (a shard's trade with the hub). */
  exchanges: number;
  /** The interval asked at the end of the run. */
  interval: number;
}

export function announceBurst(o: BurstOptions): BurstReport {
  let seed = o.seed ?? 1;
  const random = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
  let now = 0;
  const tracker = o.tracker?.(() => now, random) ?? new ShardedSwarm(o.shards, { now: () => now, random, baseIntervalSeconds: ANNOUNCE_INTERVAL_SECONDS, maxHandout: MAX_HANDOUT });
  const heap = new EventHeap();
  const starts = Array.from({ length: o.hosts }, () => random() * o.startWindowSeconds * 1000);
  const answered = new Uint8Array(o.hosts);
  const lastMinInterval = new Float64Array(o.hosts);
  const spread = new Uint8Array(o.hosts);
  for (let h = 0; h < o.hosts; h++) {
    heap.push(starts[h]!, h);
    heap.push(starts[h]! + o.downloadSeconds * 1000, h); // the announce of completion
  }
  const perSecond = new Map<number, number>();
  let announces = 0;
  let refused = 0;
  let interval = 0;
  while (heap.size > 0) {
    const { at, host } = heap.pop();
    if (at > o.seconds * 1000) break;
    now = at;
    const complete = at >= starts[host]! + o.downloadSeconds * 1000;
    if (complete && spread[host] === 0) {
      // The announcer spreads the completion over the last minInterval asked (when over 1 s).
      spread[host] = 1;
      if (lastMinInterval[host]! > 1) {
        heap.push(at + random() * lastMinInterval[host]! * 1000, host);
        continue;
      }
    }
    const outcome = tracker.announce(request(host, complete), "account:fleet");
    announces++;
    const key = outcome.shard * 1e6 + Math.floor(at / 1000);
    perSecond.set(key, (perSecond.get(key) ?? 0) + 1);
    if (!outcome.ok) {
      refused++;
      heap.push(at + 5_000, host);
      continue;
    }
    const r = outcome.response;
    interval = r.interval;
    const first = answered[host] === 0;
    answered[host] = 1;
    lastMinInterval[host] = r.minInterval ?? 1;
    // A completion was booked already (it comes at its time, whatever the tracker asked).
    if (!complete && at + r.interval * 1000 >= starts[host]! + o.downloadSeconds * 1000) continue;
    const next = first && !complete ? Math.min(r.interval, Math.max(r.minInterval ?? 1, 1)) : r.interval;
    heap.push(at + next * 1000, host);
  }
  let peak = 0;
  let peakAt = 0;
  let steady = 0;
  for (const [key, n] of perSecond) {
    const second = key % 1e6;
    if (n > peak) [peak, peakAt] = [n, second];
    if (second >= o.startWindowSeconds + 5) steady = Math.max(steady, n);
  }
  return { announces, refused, peakPerObject: peak, peakAtSecond: peakAt, steadyPeakPerObject: steady, exchanges: tracker.exchanges ?? 0, interval };
}

const request = (n: number, complete: boolean): AnnounceRequest => ({
  digest: "sha256:" + "b".repeat(64),
  peerId: (n * 2654435761 >>> 0).toString(16).padStart(8, "0") + n.toString(16).padStart(32, "0"),
  ip: `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`,
  port: 16001,
  zone: `z${n % 4}`,
  cluster: "c0",
  complete,
  have: complete ? 256 : 0,
  pieceCount: 256,
});

/** A binary min-heap of (time, host). */
class EventHeap {
  private readonly at: number[] = [];
  private readonly host: number[] = [];

  get size(): number {
    return this.at.length;
  }

  push(at: number, host: number): void {
    this.at.push(at);
    this.host.push(host);
    for (let i = this.at.length - 1; i > 0; ) {
      const parent = (i - 1) >> 1;
      if (this.at[parent]! <= this.at[i]!) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  pop(): { at: number; host: number } {
    const top = { at: this.at[0]!, host: this.host[0]! };
    const lastAt = this.at.pop()!;
    const lastHost = this.host.pop()!;
    if (this.at.length > 0) {
      this.at[0] = lastAt;
      this.host[0] = lastHost;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        let m = i;
        if (l < this.at.length && this.at[l]! < this.at[m]!) m = l;
        if (l + 1 < this.at.length && this.at[l + 1]! < this.at[m]!) m = l + 1;
        if (m === i) break;
        this.swap(i, m);
        i = m;
      }
    }
    return top;
  }

  private swap(i: number, j: number): void {
    [this.at[i], this.at[j]] = [this.at[j]!, this.at[i]!];
    [this.host[i], this.host[j]] = [this.host[j]!, this.host[i]!];
  }
}
