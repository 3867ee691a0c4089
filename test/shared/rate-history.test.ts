import { describe, expect, it } from "vitest";
import { RateHistory } from "../../src/shared/dashboard/rate-history.js";
import { renderRatePlot } from "../../src/shared/dashboard/rate-plot.js";

describe("RateHistory", () => {
  it("keeps bytes per second for the last full seconds, zeros where nothing came", () => {
    const h = new RateHistory(4, ["a", "b"]);
    h.add("a", 10, 1_000_500);
    h.add("a", 5, 1_000_900);
    h.add("b", 7, 1_002_000);
    h.add("a", 99, 1_003_100); // the current second is not plotted yet
    expect(h.samples(1_003_500)).toEqual({ startSecond: 999, series: { a: [0, 15, 0, 0], b: [0, 0, 0, 7] } });
    expect(h.samples(1_004_000).series.a).toEqual([15, 0, 0, 99]);
  });

  it("forgets a second once the ring comes round to it, and ignores unknown series and non-positive amounts", () => {
    const h = new RateHistory(3, ["a"]);
    h.add("a", 10, 0);
    h.add("a", 20, 3_000); // the same slot as second 0, three seconds later
    h.add("zzz", 5, 3_000);
    h.add("a", -4, 3_000);
    h.add("a", Number.NaN, 3_000);
    expect(h.samples(4_000)).toEqual({ startSecond: 1, series: { a: [0, 0, 20] } });
    expect(h.samples(100_000).series.a).toEqual([0, 0, 0]);
  });
});

describe("renderRatePlot", () => {
  it("draws one polyline per series with a point per second, the peak on top, and escapes its text", () => {
    const svg = renderRatePlot({ startSecond: 0, series: { a: [0, 2048, 1024], b: [0, 0, 0] } }, [
      { name: "a", label: "<b>from peers</b>", color: "#123456" },
      { name: "b", label: "from the edge", color: "red\"><script>" },
    ], "t<itle>");
    const points = [...svg.matchAll(/data-series="(\w)" data-total="(\d+)"[^>]* points="([^"]*)"/g)].map((m) => [m[1], Number(m[2]), m[3]!.split(" ")]);
    expect(points).toEqual([
      ["a", 3072, ["0.0,122.0", "300.0,16.0", "600.0,69.0"]],
      ["b", 0, ["0.0,122.0", "300.0,122.0", "600.0,122.0"]],
    ]);
    expect(svg).toContain("peak 2.0 KiB/s");
    expect(svg).toContain("&lt;b&gt;from peers&lt;/b&gt;");
    expect(svg).not.toMatch(/<script|<b>|t<itle>/);
  });
});
