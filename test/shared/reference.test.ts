import { describe, expect, it } from "vitest";
import { isRepositoryName, isTag, parseImageReference, parseManifestReference } from "../../src/shared/oci/reference.js";

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

describe("image references", () => {
  it("splits a host from the repository name the way docker does", () => {
    expect(parseImageReference("localhost:16000/demo/app:v1")).toEqual({ host: "localhost:16000", name: "demo/app", reference: { kind: "tag", tag: "v1" } });
    expect(parseImageReference("registry.example.com/team/app")).toEqual({ host: "registry.example.com", name: "team/app", reference: { kind: "tag", tag: "latest" } });
    expect(parseImageReference("localhost/app:1.0")).toEqual({ host: "localhost", name: "app", reference: { kind: "tag", tag: "1.0" } });
    expect(parseImageReference("demo/app")).toEqual({ name: "demo/app", reference: { kind: "tag", tag: "latest" } });
    const digest = `sha256:${"a".repeat(64)}`;
    expect(parseImageReference(`demo/app@${digest}`)).toEqual({ name: "demo/app", reference: { kind: "digest", digest } });
  });

  it("refuses what is no image reference, with the reason", () => {
    expect(() => parseImageReference("Demo/App:v1")).toThrow(/invalid repository name/);
    expect(() => parseImageReference("demo/app:bad tag")).toThrow(/invalid tag/);
    expect(() => parseImageReference("demo/app@sha256:zz")).toThrow(/invalid manifest reference/);
    expect(() => parseImageReference("")).toThrow(/invalid repository name/);
  });
});
