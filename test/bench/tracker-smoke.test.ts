import { describe, expect, it } from "vitest";
import path from "node:path";
import { run } from "../helpers/images.js";
import { fleetLoad } from "../../src/worker/tracker/load.js";
import { announceBurst } from "../../bench/tracker-burst.js";

/** The tracker benchmarks, tiny: they still run and print their figures. */
const TSX = path.resolve("node_modules/.bin/tsx");

describe("tracker benchmarks (smoke runs)", () => {
  it("bench/tracker.ts: announces/s of the pure Swarm, and the Worker requests per blob", async () => {
    const { stdout } = await run(TSX, ["bench/tracker.ts", "--peers", "200,400", "--seconds", "0.2", "--fleet", "500", "--shards", "1,4", "--fleet-seconds", "40"]);
    expect(stdout).toMatch(/200 peers: +[\d,]+ announces\/s/);
    expect(stdout).toMatch(/20000 +50 s/);
    // The fleet: one line per object count, with its peak per object and the Worker requests per blob.
    expect(stdout).toMatch(/A fleet of 500 hosts/);
    const peak = (objects: number) => Number(new RegExp(`\\n +${objects} +([\\d,]+) \\(\\d+ s\\).*per host\\)`).exec(stdout)?.[1]?.replace(/,/g, ""));
    expect(peak(1)).toBeGreaterThanOrEqual(500);
    expect(peak(4)).toBeLessThan(peak(1) / 2);
  });

  it("bench/tracker-edge.ts: the same through the devcluster's edge", async () => {
    const { stdout } = await run(TSX, ["bench/tracker-edge.ts", "--peers", "40", "--seconds", "1", "--concurrency", "4"]);
    expect(stdout).toMatch(/40 peers: \d+ announces\/s, p50 \d+ ms, statuses \{"200":\d+\}, 64 objects, busiest \d+\/s/);
  });

  it("fleet load: a growing interval keeps one object near 400 announces/s and cuts the requests per blob", () => {
    const fixed = fleetLoad({ hosts: 20_000, downloadSeconds: 20, seedSeconds: 600, pieces: 256 }, () => 3);
    const grown = fleetLoad({ hosts: 20_000, downloadSeconds: 20, seedSeconds: 600, pieces: 256 });
    expect(grown.intervalSeconds).toBe(50);
    expect(grown.announcesPerSecondPerObject).toBeLessThanOrEqual(500);
    expect(fixed.announcesPerSecondPerObject).toBeGreaterThan(6_000);
    expect(grown.workerRequests).toBeLessThan(fixed.workerRequests / 10);
  });

  it("a fleet starting within a second: sharded, no object takes 500 announces in any second, and the interval is the whole swarm's", () => {
    const sharded = announceBurst({ hosts: 2_000, shards: 8, startWindowSeconds: 1, downloadSeconds: 20, seconds: 60 });
    const single = announceBurst({ hosts: 2_000, shards: 1, startWindowSeconds: 1, downloadSeconds: 20, seconds: 60 });
    expect(single.peakPerObject).toBeGreaterThan(1_500);
    expect(sharded.peakPerObject).toBeLessThanOrEqual(500);
    expect(sharded.refused).toBe(0);
    // 2,000 peers at 400 announces/s: 5 s (the calendar may move an announce up to a quarter later).
    expect(sharded.interval).toBeGreaterThanOrEqual(5);
    expect(sharded.interval).toBeLessThanOrEqual(7);
    expect(sharded.exchanges).toBeLessThan(sharded.announces / 10);
  });
});
