import { describe, expect, it } from "vitest";
import { DEFAULT_TAG_TTL_SECONDS, parseRemotes, remoteFor } from "../../src/worker/upstream/config.js";

describe("SHOAL_UPSTREAMS / SHOAL_REPLICATION", () => {
  it("reads prefixes to URLs or to objects with credentials, longest prefix first", () => {
    const remotes = parseRemotes(
      JSON.stringify({ "hub/": "https://registry-1.docker.io/", "hub/team/": { url: "https://ghcr.io", username: "u", password: "p", tagTtlSeconds: 30 } }),
      "SHOAL_UPSTREAMS",
    );
    expect(remotes).toEqual([
      { prefix: "hub/team/", url: "https://ghcr.io", username: "u", password: "p", tagTtlSeconds: 30 },
      { prefix: "hub/", url: "https://registry-1.docker.io", tagTtlSeconds: DEFAULT_TAG_TTL_SECONDS },
    ]);
    expect(remoteFor(remotes, "hub/team/app")).toMatchObject({ name: "app", remote: { url: "https://ghcr.io" } });
    expect(remoteFor(remotes, "hub/library/alpine")).toMatchObject({ name: "library/alpine", remote: { prefix: "hub/" } });
    expect(remoteFor(remotes, "other/app")).toBeUndefined();
    expect(remoteFor(remotes, "hub/")).toBeUndefined();
    expect(parseRemotes(undefined, "X")).toEqual([]);
  });

  it("refuses what is not a prefix map, naming the variable", () => {
    expect(() => parseRemotes("not json", "SHOAL_UPSTREAMS")).toThrow(/SHOAL_UPSTREAMS is not JSON/);
    expect(() => parseRemotes(JSON.stringify({ "a/": "not a url" }), "SHOAL_REPLICATION")).toThrow(/SHOAL_REPLICATION: a\//);
    expect(() => parseRemotes(JSON.stringify({ "a/": { url: "https://x", extra: 1 } }), "SHOAL_REPLICATION")).toThrow(/SHOAL_REPLICATION/);
  });
});
