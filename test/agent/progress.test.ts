import { describe, expect, it } from "vitest";
import { RateMeter, fitLabel, formatDuration, renderBar } from "../../src/agent-node/cli/progress.js";

const MiB = 1024 * 1024;

describe("progress lines", () => {
  it.each([64, 80, 100, 120, 200, 300])("fit %i columns with the size whole", (columns) => {
    for (const label of ["config", "layer 3 0123456789ab", "a-very-long-file-name-that-goes-on-and-on-and-on-and-on-and-on.safetensors"]) {
      for (const [value, size] of [[0, 0], [57.2 * MiB, 57.2 * MiB], [3 * MiB, 1023.9 * 1024 * MiB]]) {
        const line = renderBar({ label, value: value!, size: size!, rate: 12.5 * MiB, finished: value === size }, columns);
        expect([...line].length).toBeLessThanOrEqual(columns);
        expect(line).toContain(`/${size === 0 ? "     0 B" : size === 57.2 * MiB ? "57.2 MiB" : "1024 GiB"}`);
      }
    }
  });

  it("keep a long name's start and end", () => {
    expect(fitLabel("abcdefghijklmnopqrstuvwxyz.bin", 11)).toBe("abcde…z.bin");
    expect(fitLabel("short", 8)).toBe("short   ");
  });

  it("say how long is left", () => {
    expect(formatDuration(12.4)).toBe("12s");
    expect(formatDuration(185)).toBe("3m05s");
    expect(formatDuration(3720)).toBe("1h02m");
    expect(renderBar({ label: "x", value: 10 * MiB, size: 70 * MiB, rate: 2 * MiB, finished: false }, 80)).toMatch(/2\.0 MiB\/s ETA 30s$/);
  });

  it("measure the rate over the last seconds, so a stall shows", () => {
    const meter = new RateMeter(5_000);
    meter.record(0, 0);
    expect(meter.rate()).toBeUndefined();
    for (let t = 1_000; t <= 10_000; t += 1_000) meter.record(t * 1024, t); // 1 MiB/s
    expect(meter.rate()).toBeCloseTo(1024 * 1000, -2);
    for (let t = 11_000; t <= 20_000; t += 1_000) meter.record(10_000 * 1024, t); // stalled
    expect(meter.rate()).toBe(0);
  });
});
