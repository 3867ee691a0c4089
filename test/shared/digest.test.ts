import { describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { parseDigest, sha256Digest, isDigest } from "../../src/shared/oci/digest.js";
import { OciError } from "../../src/shared/oci/errors.js";

describe("digest", () => {
  it.each([
    ["sha256:" + "a".repeat(64), true],
    ["sha256:" + "A".repeat(64), false],
    ["sha256:" + "a".repeat(63), false],
    ["sha512:" + "a".repeat(128), true],
    ["sha512:" + "a".repeat(64), false],
    ["sha384:" + "a".repeat(96), false],
    ["sha256", false],
    ["", false],
    ["sha256:../../etc", false],
  ])("parseDigest(%s) accepted=%s", (value, ok) => {
    if (ok) expect(parseDigest(value)).toBe(value);
    else expect(() => parseDigest(value)).toThrowError(OciError);
  });

  it("reports DIGEST_INVALID for an unsupported algorithm, with the reason", () => {
    try {
      parseDigest("sha384:" + "a".repeat(96));
      expect.unreachable();
    } catch (error) {
      expect((error as OciError).code).toBe("DIGEST_INVALID");
      expect((error as OciError).message).toMatch(/sha256 and sha512 are accepted/);
    }
  });

  it("recognises the grammar of other algorithms", () => {
    expect(isDigest("sha512:abc")).toBe(true);
    expect(isDigest("multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8")).toBe(true);
    expect(isDigest("nocolon")).toBe(false);
  });

  it("computes SHA-256 digests like node:crypto", async () => {
    const bytes = new TextEncoder().encode("hello shoal");
    expect(await sha256Digest(bytes)).toBe(`sha256:${createHash("sha256").update(bytes).digest("hex")}`);
  });
});
