import { BASE_PIECE_LENGTH_BYTES } from "../../shared/p2p/metainfo.js";
import { SCHEDULER_TUNING } from "../../shared/p2p/schedule/config.js";
/**
 * A bandwidth limit: `rate` bytes per second with at most `burst` bytes of credit. Takers reserve
 * their bytes at once and wait off any debt, so concurrent takers share the rate fairly and a
 * block bigger than the burst still passes (after its time). Hand-written rather than a library:
 * rate limiters on npm refuse a take larger than the bucket, and a 1 MiB block must always pass.
 *
 * Priority takers (a piece only the web seed has, that the whole swarm waits for) go first: they
 * wait off only the debt of priority takers, and the others wait off all of it: ordinary traffic
 * yields, and the rate is exceeded by no more than one more burst and what ordinary takers had
 * already booked when priority traffic overtook them (a chunk per paused connection).
 */
export class TokenBucket {
  private tokens: number;
  private priorityTokens: number;
  private last: number;

  constructor(
    readonly rateBytesPerSecond: number,
    readonly burstBytes: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    if (!(rateBytesPerSecond > 0) || !(burstBytes > 0)) throw new RangeError("rate and burst must be positive");
    this.tokens = burstBytes;
    this.priorityTokens = burstBytes;
    this.last = now();
  }

  /** Reserves `bytes` and returns how long (ms) the taker must wait before using them. */
  reserve(bytes: number, priority = false): number {
    const now = this.now();
    const refill = ((now - this.last) / 1000) * this.rateBytesPerSecond;
    this.tokens = Math.min(this.burstBytes, this.tokens + refill) - bytes;
    this.priorityTokens = Math.min(this.burstBytes, this.priorityTokens + refill) - (priority ? bytes : 0);
    this.last = now;
    const debt = priority ? -this.priorityTokens : -this.tokens;
    return debt <= 0 ? 0 : (debt / this.rateBytesPerSecond) * 1000;
  }

  async take(bytes: number, priority = false): Promise<void> {
    const wait = this.reserve(bytes, priority);
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  }
}

/**
 * How many bytes of requested blocks an agent lets wait for its uplink, across all peers. Past
 * it, requests are rejected at once (the requester asks another peer) instead of queueing behind
 * everyone else's: a popular seeder with 15 requesters would otherwise hold each for many seconds.
 */
export class UploadBacklog {
  private queued = 0;

  constructor(readonly maxBytes: number) {}

  /**
   * Books `bytes` if there is room (or `force`: the rest of a piece whose first block was
   * accepted, so a requester never gets half a piece).
   */
  tryReserve(bytes: number, force = false): boolean {
    if (!force && this.queued > 0 && this.queued + bytes > this.maxBytes) return false;
    this.queued += bytes;
    return true;
  }

  release(bytes: number): void {
    this.queued = Math.max(0, this.queued - bytes);
  }

  get bytes(): number {
    return this.queued;
  }
}

/** The agent's limits for peer traffic (and web-seed reads, which are ingress too). */
export interface Bandwidth {
  ingress?: TokenBucket;
  egress?: TokenBucket;
  /** Requested blocks waiting to be sent, across all peers. */
  uploads?: UploadBacklog;
}

/**
 * An upload backlog of as many 1 MiB pieces as a downloader keeps in flight (4 MiB), whatever the
 * rate: past it an uploader splits its uplink thinner than each downloader's share needs while
 * other uplinks idle, and the requests it rejects go to those. Simulated, 260 hosts × 300 MB at
 * 30 MB/s: downlinks busy 0.73 of the time with half a second of the uplink (15 MB), 0.94 with
 * 4 MiB (1 MiB: 0.50, 8 MiB: 0.80); a longer queue only delays each piece.
 */
export const UPLOAD_BACKLOG_BYTES = SCHEDULER_TUNING.maxPiecesInFlight * BASE_PIECE_LENGTH_BYTES;

export function backlogFor(): UploadBacklog {
  return new UploadBacklog(UPLOAD_BACKLOG_BYTES);
}

/** A bucket for `rate` bytes/s with half a second of burst (at least one 1 MiB block), or none. */
export function bucketFor(rateBytesPerSecond: number | undefined): TokenBucket | undefined {
  if (!rateBytesPerSecond) return undefined;
  return new TokenBucket(rateBytesPerSecond, Math.max(rateBytesPerSecond / 2, 1024 * 1024));
}
