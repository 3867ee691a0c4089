import type { Logger } from "pino";
import type { Digest } from "../../shared/oci/digest.js";
import type { AnnounceRequest, AnnounceResponse } from "../../shared/api/announce.js";
import type { EdgeClient } from "../edge/edge-client.js";

export interface AnnouncerOptions {
  edge: EdgeClient;
  log: Logger;
  peerId: string;
  ip: string;
  port: number;
  zone: string;
  cluster: string;
  /** How long a blob keeps being announced as seeded after it was last fetched or served. */
  seedWindowMs: number;
  now?: () => number;
}

/** Digests whose last leech answer is remembered (for spreading the announce of completion). */
const HEARD_MAX = 256;

interface Seeding {
  pieceCount: number;
  activeAt: number;
  nextAt: number;
  /** Peers the tracker handed out at the last announce (the admin page's "peers"). */
  peers?: number;
}

/**
 * Announces the blobs this agent seeds to their swarms' trackers, at the interval each tracker
 * asks for, while they are recently used. A tracker that cannot be reached is retried on the next
 * round; the agent goes on serving what it has.
 */
export class Announcer {
  private readonly seeding = new Map<Digest, Seeding>();
  /** The least time between announces (s) the tracker last asked of this agent's download, by digest. */
  private readonly heard = new Map<Digest, number>();
  private timer: NodeJS.Timeout | undefined;
  private readonly now: () => number;

  constructor(private readonly options: AnnouncerOptions) {
    this.now = options.now ?? Date.now;
  }

  start(): void {
    this.timer = setInterval(() => void this.tick(), 1_000);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Marks a seeded blob as recently used; false when it is not being seeded. */
  touch(digest: Digest): boolean {
    const entry = this.seeding.get(digest);
    if (entry) entry.activeAt = this.now();
    return entry !== undefined;
  }

  /** The tracker answered this agent's download of a blob (its minInterval spreads the completion). */
  heardFor(digest: Digest, response: AnnounceResponse): void {
    this.heard.delete(digest);
    this.heard.set(digest, response.minInterval ?? 1);
    if (this.heard.size > HEARD_MAX) this.heard.delete(this.heard.keys().next().value!);
  }

  /**
   * Starts (or refreshes) seeding a complete blob, announcing it at once; in a big swarm (the
   * tracker asked for more than a second between announces) at a random moment within that
   * minInterval instead: a fleet finishing together would otherwise send every completion to the
   * tracker in the same second. Peers learn of a seeder by its pieces meanwhile.
   */
  async seed(digest: Digest, pieceCount: number, random: () => number = Math.random): Promise<AnnounceResponse | undefined> {
    if (this.touch(digest)) return undefined;
    const spreadSeconds = this.heard.get(digest) ?? 0;
    this.heard.delete(digest);
    const nextAt = spreadSeconds > 1 ? this.now() + random() * spreadSeconds * 1000 : 0;
    this.seeding.set(digest, { pieceCount, activeAt: this.now(), nextAt });
    return nextAt === 0 ? this.announceOne(digest) : undefined;
  }

  request(digest: Digest, pieceCount: number, complete: boolean, have: number, fetching = true): AnnounceRequest {
    const { peerId, ip, port, zone, cluster } = this.options;
    // `fetching` is sent only when false: older edges refuse fields they do not know.
    return { digest, peerId, ip, port, zone, cluster, complete, have, pieceCount, ...(fetching || complete ? {} : { fetching: false }) };
  }

  private ticking = false;

  private async tick(): Promise<void> {
    // A slow edge must not get a second round of the same announces while the first waits.
    if (this.ticking) return;
    this.ticking = true;
    try {
      await this.round();
    } finally {
      this.ticking = false;
    }
  }

  private async round(): Promise<void> {
    const now = this.now();
    for (const [digest, entry] of this.seeding) {
      if (now - entry.activeAt > this.options.seedWindowMs) {
        this.seeding.delete(digest);
        continue;
      }
      if (now >= entry.nextAt) await this.announceOne(digest);
    }
  }

  private async announceOne(digest: Digest): Promise<AnnounceResponse | undefined> {
    const entry = this.seeding.get(digest);
    if (!entry) return undefined;
    try {
      const response = await this.options.edge.announce(this.request(digest, entry.pieceCount, true, entry.pieceCount));
      entry.nextAt = this.now() + response.interval * 1000;
      entry.peers = response.peers.length;
      return response;
    } catch (error) {
      entry.nextAt = this.now() + 5_000;
      this.options.log.warn({ digest, err: (error as Error).message }, "announce failed; will retry");
      return undefined;
    }
  }

  active(): { digest: Digest; pieceCount: number; peers?: number }[] {
    return [...this.seeding].map(([digest, e]) => ({ digest, pieceCount: e.pieceCount, ...(e.peers === undefined ? {} : { peers: e.peers }) }));
  }
}
