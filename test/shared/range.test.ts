import { describe, expect, it } from "vitest";
import { parseChunkRange, parseRangeHeader, uploadRangeHeader } from "../../src/shared/oci/range.js";

describe("Range requests", () => {
  const size = 100;
  it.each([
    [undefined, { kind: "none" }],
    ["bytes=0-9", { kind: "satisfiable", range: { start: 0, end: 9 } }],
    ["bytes=90-", { kind: "satisfiable", range: { start: 90, end: 99 } }],
    ["bytes=90-500", { kind: "satisfiable", range: { start: 90, end: 99 } }],
    ["bytes=-10", { kind: "satisfiable", range: { start: 90, end: 99 } }],
    ["bytes=-1000", { kind: "satisfiable", range: { start: 0, end: 99 } }],
    ["bytes=99-99", { kind: "satisfiable", range: { start: 99, end: 99 } }],
    ["bytes=100-", { kind: "unsatisfiable" }],
    ["bytes=-0", { kind: "unsatisfiable" }],
    ["bytes=5-2", { kind: "none" }],
    ["bytes=0-1,5-6", { kind: "none" }],
    ["items=0-1", { kind: "none" }],
  ])("%s", (header, expected) => {
    expect(parseRangeHeader(header, size)).toEqual(expected);
  });

  it("an empty blob has no satisfiable range", () => {
    expect(parseRangeHeader("bytes=0-0", 0)).toEqual({ kind: "unsatisfiable" });
  });
});

describe("upload Content-Range and Range", () => {
  it.each([
    ["0-99", { start: 0, end: 99 }],
    ["bytes 0-99/100", { start: 0, end: 99 }],
    ["bytes=5-5", { start: 5, end: 5 }],
    ["5-4", undefined],
    ["x-y", undefined],
  ])("%s", (header, expected) => expect(parseChunkRange(header)).toEqual(expected));

  it("reports received bytes as 0-<offset-1>", () => {
    expect(uploadRangeHeader(0)).toBe("0-0");
    expect(uploadRangeHeader(1)).toBe("0-0");
    expect(uploadRangeHeader(1000)).toBe("0-999");
  });
});
