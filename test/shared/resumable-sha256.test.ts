import { describe, expect, it } from "vitest";
import { createHash, randomBytes } from "node:crypto";
import { ResumableSha256 } from "../../src/shared/hash/resumable-sha256.js";

describe("ResumableSha256", () => {
  it("matches node:crypto when saved and restored at every split point of a 200-byte input", () => {
    const data = randomBytes(200);
    const expected = createHash("sha256").update(data).digest("hex");
    for (let split = 0; split <= data.length; split++) {
      const first = ResumableSha256.create().update(data.subarray(0, split));
      const state = JSON.parse(JSON.stringify(first.save()));
      const second = ResumableSha256.restore(state).update(data.subarray(split));
      expect(second.hex()).toBe(expected);
      expect(second.bytesHashed).toBe(data.length);
    }
  });

  it("survives many save/restore cycles over chaotic chunk sizes", () => {
    const data = randomBytes(1 << 20);
    let hash = ResumableSha256.create();
    let at = 0;
    let step = 1;
    while (at < data.length) {
      const n = Math.min(data.length - at, step);
      hash = ResumableSha256.restore(hash.update(data.subarray(at, at + n)).save());
      at += n;
      step = (step * 7 + 13) % 70_001;
    }
    expect(hash.hex()).toBe(createHash("sha256").update(data).digest("hex"));
  });

  it("hashes the empty input", () => {
    expect(ResumableSha256.create().hex()).toBe(createHash("sha256").digest("hex"));
  });

  it("refuses a corrupt state", () => {
    expect(() => ResumableSha256.restore({ h: [1, 2], buffer: "", length: 0 })).toThrow();
    expect(() => ResumableSha256.restore({ h: [1, 2, 3, 4, 5, 6, 7, 8], buffer: btoa("x".repeat(64)), length: 0 })).toThrow();
  });
});
