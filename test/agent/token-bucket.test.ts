import { describe, expect, it } from "vitest";
import { TokenBucket, UploadBacklog, backlogFor, bucketFor } from "../../src/agent-node/p2p/token-bucket.js";

describe("TokenBucket", () => {
  it("lets the burst through at once, then paces at the rate", () => {
    let now = 0;
    const bucket = new TokenBucket(1000, 500, () => now);
    expect(bucket.reserve(500)).toBe(0);
    expect(bucket.reserve(100)).toBeCloseTo(100); // 100 bytes of debt at 1000 B/s
    now = 100;
    expect(bucket.reserve(0)).toBe(0);
    expect(bucket.reserve(1000)).toBeCloseTo(1000);
  });

  it("never holds more than the burst, however long it idles", () => {
    let now = 0;
    const bucket = new TokenBucket(1000, 500, () => now);
    now = 60_000;
    expect(bucket.reserve(500)).toBe(0);
    expect(bucket.reserve(500)).toBeCloseTo(500);
  });

  it("shares the rate between concurrent takers: total time is total bytes / rate", () => {
    let now = 0;
    const bucket = new TokenBucket(1_000_000, 100_000, () => now);
    const waits = Array.from({ length: 10 }, () => bucket.reserve(100_000));
    // 1 MB at 1 MB/s with 100 kB of burst: the last taker waits 0.9 s.
    expect(Math.max(...waits)).toBeCloseTo(900);
  });

  it("passes a block bigger than the burst after its time", () => {
    const bucket = new TokenBucket(1000, 10, () => 0);
    expect(bucket.reserve(2010)).toBeCloseTo(2000);
  });

  it("bucketFor: none without a rate; half a second of burst, at least a block", () => {
    expect(bucketFor(undefined)).toBeUndefined();
    expect(bucketFor(0)).toBeUndefined();
    expect(bucketFor(10 * 1024 * 1024)!.burstBytes).toBe(5 * 1024 * 1024);
    expect(bucketFor(100)!.burstBytes).toBe(1024 * 1024);
  });

  it("lets priority takers go first, exceeding the rate by no more than a burst and what was already booked", () => {
    let now = 0;
    const bucket = new TokenBucket(1000, 100, () => now);
    expect(bucket.reserve(1000)).toBeCloseTo(900); // ordinary traffic booked 0.9 s ahead
    expect(bucket.reserve(100, true)).toBe(0); // a priority taker does not queue behind it
    expect(bucket.reserve(100, true)).toBeCloseTo(100); // but behind other priority takers
    expect(bucket.reserve(100)).toBeCloseTo(1200); // ordinary traffic waits for all of it
    // Over 10 s of both at full tilt, the total stays within the rate, two bursts and the 1100
    // bytes ordinary takers had booked when priority traffic overtook them.
    let total = 1300;
    for (now = 0; now < 10_000; now += 10) {
      for (const priority of [true, false]) {
        if (bucket.reserve(0, priority) === 0) {
          bucket.reserve(50, priority);
          total += 50;
        }
      }
    }
    expect(total).toBeLessThanOrEqual(1000 * 10 + 2 * 100 + 1100);
    expect(total).toBeGreaterThan(1000 * 10);
  });

  it("refuses a zero rate", () => {
    expect(() => new TokenBucket(0, 1)).toThrow(RangeError);
  });
});

describe("UploadBacklog", () => {
  it("books blocks up to its size, always at least one, and forced ones past it", () => {
    const backlog = new UploadBacklog(2 * 1024 * 1024);
    expect(backlog.tryReserve(1024 * 1024)).toBe(true);
    expect(backlog.tryReserve(1024 * 1024)).toBe(true);
    expect(backlog.tryReserve(1024 * 1024)).toBe(false);
    expect(backlog.tryReserve(1024 * 1024, true)).toBe(true); // the rest of an accepted piece
    backlog.release(3 * 1024 * 1024);
    expect(backlog.bytes).toBe(0);
    const tiny = new UploadBacklog(10);
    expect(tiny.tryReserve(1000)).toBe(true); // an empty backlog takes any one block
  });

  it("backlogFor: as many 1 MiB pieces as a downloader keeps in flight, whatever the rate", () => {
    expect(backlogFor().maxBytes).toBe(4 * 1024 * 1024);
  });
});
