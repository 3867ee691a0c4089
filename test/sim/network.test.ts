import { describe, expect, it } from "vitest";
import { EventQueue } from "../../bench/sim/event-queue.js";
import { EDGE, FluidNetwork } from "../../bench/sim/network.js";

const MB = 1024 * 1024;

/** One web-seed read of `bytes` to a host with a `rate` downlink; when it finishes (s). */
function finishTime(bytes: number, rate: number, burstSeconds: number, idleBeforeMs = 0): number {
  const queue = new EventQueue();
  const net = new FluidNetwork({ up: Float64Array.of(rate), down: Float64Array.of(rate), cluster: Int32Array.of(0), wan: [100 * rate], edge: Number.POSITIVE_INFINITY, burstSeconds }, queue, 10);
  let finished = Number.NaN;
  queue.at(idleBeforeMs, () => net.start(EDGE, 0, bytes, (at) => (finished = at / 1000)));
  for (let guard = 0; guard < 100_000 && Number.isNaN(finished); guard++) {
    if (!net.busy) queue.runUntil(queue.peekTime());
    else {
      const t0 = queue.now;
      net.step(t0);
      queue.runUntil(t0 + 10);
    }
  }
  return finished;
}

describe("the simulator's links", () => {
  it("move at their rate without credit", () => {
    expect(finishTime(4 * MB, 2 * MB, 0)).toBeCloseTo(2, 1);
  });

  it("pass their credit at once, then their rate, as the benchmark's token buckets do", () => {
    // Half a second of a 2 MB/s link is 1 MB: 4 MB take 1.5 s, not 2.
    expect(finishTime(4 * MB, 2 * MB, 0.5)).toBeCloseTo(1.5, 1);
    // A host link's credit is at least 1 MiB (token-bucket.ts bucketFor).
    expect(finishTime(4 * MB, 0.5 * MB, 0.5)).toBeCloseTo(6, 1);
  });
});
