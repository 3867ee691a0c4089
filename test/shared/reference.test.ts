import { describe, expect, it } from "vitest";
import { isRepositoryName, isTag, parseManifestReference } from "../../src/shared/oci/reference.js";

describe("repository names (distribution-spec regular expression)", () => {
  it.each([
    ["library/ubuntu", true],
    ["a", true],
    ["a/b/c/d", true],
    ["my-org/my_repo.v2", true],
    ["a__b", true],
    ["a---b", true],
    ["A", false],
    ["", false],
    ["/a", false],
    ["a/", false],
    ["a//b", false],
    ["a/../b", false],
    ["..", false],
    ["a/./b", false],
    ["a_-b", false],
    ["a___b", false],
    ["-a", false],
    ["a:b", false],
    ["a".repeat(255), true],
    ["a".repeat(256), false],
  ])("%s → %s", (name, ok) => {
    expect(isRepositoryName(name)).toBe(ok);
  });
});

describe("tags and references", () => {
  it.each([
    ["latest", true],
    ["v1.2.3-rc_1", true],
    ["_x", true],
    [".x", false],
    ["-x", false],
    ["a".repeat(128), true],
    ["a".repeat(129), false],
  ])("tag %s → %s", (tag, ok) => expect(isTag(tag)).toBe(ok));

  it("tells digests from tags", () => {
    const digest = "sha256:" + "0".repeat(64);
    expect(parseManifestReference(digest)).toEqual({ kind: "digest", digest });
    expect(parseManifestReference("v1")).toEqual({ kind: "tag", tag: "v1" });
    expect(() => parseManifestReference("sha256:short")).toThrow(/invalid manifest reference/);
    expect(() => parseManifestReference("bad tag")).toThrow(/invalid tag/);
  });
});
