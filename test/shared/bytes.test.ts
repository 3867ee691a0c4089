import { describe, expect, it } from "vitest";
import { concatBytes } from "../../src/shared/bytes.js";

describe("concatBytes", () => {
  it("joins parts in order", () => {
    expect([...concatBytes([new Uint8Array([1, 2]), new Uint8Array([]), new Uint8Array([3])])]).toEqual([1, 2, 3]);
  });
  it("returns a single part without copying, and an empty array for none", () => {
    const only = new Uint8Array([9]);
    expect(concatBytes([only])).toBe(only);
    expect(concatBytes([]).byteLength).toBe(0);
  });
});
