/**
 * A bandwidth limit: `rate` bytes per second with at most `burst` bytes of credit. Takers reserve
 * their bytes at once and wait off any debt, so concurrent takers share the rate fairly and a
 * block bigger than the burst still passes (after its time). Hand-written rather than a library:
 * rate limiters on npm refuse a take larger than the bucket, and a 1 MiB block must always pass.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    readonly rateBytesPerSecond: number,
    readonly burstBytes: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    if (!(rateBytesPerSecond > 0) || !(burstBytes > 0)) throw new RangeError("rate and burst must be positive");
    this.tokens = burstBytes;
    this.last = now();
  }

  /** Reserves `bytes` and returns how long (ms) the taker must wait before using them. */
  reserve(bytes: number): number {
    const now = this.now();
    this.tokens = Math.min(this.burstBytes, this.tokens + ((now - this.last) / 1000) * this.rateBytesPerSecond);
    this.last = now;
    this.tokens -= bytes;
    return this.tokens >= 0 ? 0 : (-this.tokens / this.rateBytesPerSecond) * 1000;
  }

  async take(bytes: number): Promise<void> {
    const wait = this.reserve(bytes);
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  }
}

/** The agent's limits for peer traffic (and web-seed reads, which are ingress too). */
export interface Bandwidth {
  ingress?: TokenBucket;
  egress?: TokenBucket;
}

/** A bucket for `rate` bytes/s with half a second of burst (at least one 1 MiB block), or none. */
export function bucketFor(rateBytesPerSecond: number | undefined): TokenBucket | undefined {
  if (!rateBytesPerSecond) return undefined;
  return new TokenBucket(rateBytesPerSecond, Math.max(rateBytesPerSecond / 2, 1024 * 1024));
}
