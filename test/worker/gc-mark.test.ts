import { describe, expect, it } from "vitest";
import { markRepository, type MarkInput } from "../../src/worker/gc/mark.js";
import { parseRetention, policyFor } from "../../src/worker/gc/policy.js";
import { cronMatches, cronsFromToml, parseCron } from "../../src/edge-deno/cron.js";

const DAY = 24 * 60 * 60 * 1000;
const NOW = 1_000 * DAY;

function input(parts: Partial<MarkInput>): MarkInput {
  return { tags: [], manifests: [], references: new Map(), links: [], ...parts };
}

describe("the mark of a repository", () => {
  it("keeps tagged manifests, their index children and blobs, and referrers of live manifests; drops the rest past retention", () => {
    const result = markRepository(
      input({
        tags: [{ tag: "v1", digest: "m:index", updatedAt: NOW - 10 * DAY }],
        manifests: [
          { digest: "m:index", subject: null, lastPushedAt: NOW - 10 * DAY },
          { digest: "m:amd64", subject: null, lastPushedAt: NOW - 10 * DAY },
          { digest: "m:sig", subject: "m:amd64", lastPushedAt: NOW - 10 * DAY },
          { digest: "m:sig-of-sig", subject: "m:sig", lastPushedAt: NOW - 10 * DAY },
          { digest: "m:old", subject: null, lastPushedAt: NOW - 10 * DAY },
          { digest: "m:orphan-sig", subject: "m:old", lastPushedAt: NOW - 10 * DAY },
        ],
        references: new Map([
          ["m:index", ["m:amd64"]],
          ["m:amd64", ["b:config", "b:layer"]],
          ["m:sig", ["b:sig"]],
          ["m:sig-of-sig", ["b:sig2"]],
          ["m:old", ["b:old"]],
          ["m:orphan-sig", ["b:orphan"]],
        ]),
        links: ["m:index", "m:amd64", "m:sig", "m:sig-of-sig", "m:old", "m:orphan-sig", "b:config", "b:layer", "b:sig", "b:sig2", "b:old", "b:orphan", "b:loose"].map((digest) => ({ digest, linkedAt: NOW - 10 * DAY })),
      }),
      { policy: { untaggedDays: 7 }, now: NOW, graceMs: DAY },
    );
    expect([...result.liveManifests].sort()).toEqual(["m:amd64", "m:index", "m:sig", "m:sig-of-sig"]);
    expect(result.deadManifests.sort()).toEqual(["m:old", "m:orphan-sig"]);
    expect([...result.liveDigests].sort()).toEqual(["b:config", "b:layer", "b:sig", "b:sig2", "m:amd64", "m:index", "m:sig", "m:sig-of-sig"]);
    expect(result.deadLinks.sort()).toEqual(["b:loose", "b:old", "b:orphan", "m:old", "m:orphan-sig"]);
  });

  it("keeps untagged manifests for untaggedDays after their last push, forever without a policy, and fresh links for the grace period", () => {
    const base = input({
      manifests: [
        { digest: "m:recent", subject: null, lastPushedAt: NOW - 2 * DAY },
        { digest: "m:ancient", subject: null, lastPushedAt: NOW - 400 * DAY },
      ],
      references: new Map([
        ["m:recent", ["b:r"]],
        ["m:ancient", ["b:a"]],
      ]),
      links: [
        { digest: "b:fresh", linkedAt: NOW - 1000 },
        { digest: "b:stale", linkedAt: NOW - 2 * DAY },
      ],
    });
    const week = markRepository(base, { policy: { untaggedDays: 7 }, now: NOW, graceMs: DAY });
    expect([...week.liveManifests]).toEqual(["m:recent"]);
    expect(week.liveDigests.has("b:fresh")).toBe(true);
    expect(week.deadLinks).toEqual(["b:stale"]);
    const forever = markRepository(base, { policy: {}, now: NOW, graceMs: 0 });
    expect([...forever.liveManifests].sort()).toEqual(["m:ancient", "m:recent"]);
    expect(forever.deadLinks.sort()).toEqual(["b:fresh", "b:stale"]);
  });

  it("retention keeps the last N tags by push time and those matching the pattern; the others are dropped", () => {
    const tags = ["release-1", "a", "b", "c", "d"].map((tag, i) => ({ tag, digest: `m:${tag}`, updatedAt: NOW - (10 - i) * DAY }));
    const result = markRepository(
      input({ tags, manifests: tags.map((t) => ({ digest: t.digest, subject: null, lastPushedAt: t.updatedAt })), references: new Map(tags.map((t) => [t.digest, []])) }),
      { policy: { keepLast: 2, keepTags: "^release-", untaggedDays: 0 }, now: NOW, graceMs: 0 },
    );
    expect(result.keptTags.sort()).toEqual(["c", "d", "release-1"]);
    expect(result.droppedTags.sort()).toEqual(["a", "b"]);
    expect(result.deadManifests.sort()).toEqual(["m:a", "m:b"]);
  });

  it("keeps every link of a repository with a live manifest whose references are unknown", () => {
    const result = markRepository(
      input({ tags: [{ tag: "x", digest: "m:x", updatedAt: NOW }], manifests: [{ digest: "m:x", subject: null, lastPushedAt: NOW }], links: [{ digest: "b:1", linkedAt: 0 }] }),
      { policy: {}, now: NOW, graceMs: 0 },
    );
    expect(result.unindexed).toEqual(["m:x"]);
    expect(result.deadLinks).toEqual([]);
  });
});

describe("retention settings", () => {
  it("takes the longest matching prefix and refuses bad settings with the reason", () => {
    const policies = parseRetention(JSON.stringify({ "": { untaggedDays: 30 }, "ci/": { keepLast: 5 }, "ci/keep/": { keepTags: ".*" } }));
    expect(policyFor(policies, "ci/keep/app")).toEqual({ keepTags: ".*" });
    expect(policyFor(policies, "ci/app")).toEqual({ keepLast: 5 });
    expect(policyFor(policies, "web")).toEqual({ untaggedDays: 30 });
    expect(policyFor(parseRetention(undefined), "web")).toEqual({});
    expect(() => parseRetention("{")).toThrow(/not valid JSON/);
    expect(() => parseRetention(JSON.stringify({ "": { keepLast: -1 } }))).toThrow(/keepLast/);
    expect(() => parseRetention(JSON.stringify({ "": { keepTags: "(" } }))).toThrow(/regular expression/);
    expect(() => parseRetention(JSON.stringify({ "": { keepForever: true } }))).toThrow(/keepForever/);
  });
});

describe("cron triggers on the Deno edge", () => {
  it("reads wrangler.toml's crons and matches them in UTC", () => {
    expect(cronsFromToml(`[vars]\nX = "1"\n\n[triggers]\ncrons = ["17 3 * * *", "*/15 * * * 1-5"]\n\n[[r2_buckets]]\n`)).toEqual(["17 3 * * *", "*/15 * * * 1-5"]);
    const daily = parseCron("17 3 * * *");
    expect(cronMatches(daily, new Date("2026-12-01T03:17:00Z"))).toBe(true);
    expect(cronMatches(daily, new Date("2026-12-01T03:18:00Z"))).toBe(false);
    const weekdays = parseCron("*/15 * * * 1-5");
    expect(cronMatches(weekdays, new Date("2026-12-01T10:45:00Z"))).toBe(true); // a Tuesday
    expect(cronMatches(weekdays, new Date("2026-12-06T10:45:00Z"))).toBe(false); // a Sunday
    expect(cronMatches(parseCron("0 0 * * 7"), new Date("2026-12-06T00:00:00Z"))).toBe(true);
    expect(() => parseCron("61 * * * *")).toThrow(/out of range/);
    expect(() => parseCron("* * *")).toThrow(/five fields/);
  });
});
