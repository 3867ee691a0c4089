import type { RetentionPolicy } from "./policy.js";

/**
 * The mark of one repository, pure: from its rows (tags, manifests with what they reference, blob
 * links) and its retention policy, which tags retention drops, which manifests stay live, and which
 * digests the repository keeps alive in storage. The repository's Durable Object runs it inside one
 * synchronous step and applies the result at once, so no push interleaves with it.
 */
export interface MarkInput {
  tags: { tag: string; digest: string; updatedAt: number }[];
  /** `lastPushedAt`: the latest of its first push and its last re-push or re-link. */
  manifests: { digest: string; subject: string | null; lastPushedAt: number }[];
  /** What each manifest references (config, layers, index children); absent: not known. */
  references: Map<string, string[]>;
  links: { digest: string; linkedAt: number }[];
}

export interface MarkOptions {
  policy: RetentionPolicy;
  now: number;
  /** Anything pushed or linked this recently is live whatever the policy says. */
  graceMs: number;
}

export interface MarkResult {
  keptTags: string[];
  droppedTags: string[];
  liveManifests: Set<string>;
  deadManifests: string[];
  /** Every digest the repository keeps alive: live manifests, what they reference, fresh links. */
  liveDigests: Set<string>;
  deadLinks: string[];
  /** Live manifests whose references are not known: their repository keeps every link. */
  unindexed: string[];
}

const DAY_MS = 24 * 60 * 60 * 1000;

export function markRepository(input: MarkInput, options: MarkOptions): MarkResult {
  const { policy, now, graceMs } = options;
  const pattern = policy.keepTags !== undefined ? new RegExp(policy.keepTags) : null;
  const byRecency = [...input.tags].sort((a, b) => b.updatedAt - a.updatedAt || (a.tag < b.tag ? -1 : 1));
  const keptTags: string[] = [];
  const droppedTags: string[] = [];
  byRecency.forEach((t, rank) => {
    const keep = policy.keepLast === undefined || rank < policy.keepLast || pattern?.test(t.tag) === true || now - t.updatedAt < graceMs;
    (keep ? keptTags : droppedTags).push(t.tag);
  });

  const manifests = new Map(input.manifests.map((m) => [m.digest, m]));
  const untaggedMs = policy.untaggedDays === undefined ? Infinity : policy.untaggedDays * DAY_MS;
  const tagged = new Set(input.tags.filter((t) => keptTags.includes(t.tag)).map((t) => t.digest));
  const live = new Set<string>();
  const work: string[] = [];
  const visit = (digest: string) => {
    if (!manifests.has(digest) || live.has(digest)) return;
    live.add(digest);
    work.push(digest);
  };
  for (const m of input.manifests) {
    const age = now - m.lastPushedAt;
    if (tagged.has(m.digest) || age < untaggedMs || age < graceMs) visit(m.digest);
  }
  // Referrers: a manifest whose subject is live stays live (and keeps what it references).
  const referrers = new Map<string, string[]>();
  for (const m of input.manifests) if (m.subject) referrers.set(m.subject, [...(referrers.get(m.subject) ?? []), m.digest]);
  const liveDigests = new Set<string>();
  const unindexed: string[] = [];
  while (work.length > 0) {
    const digest = work.pop()!;
    liveDigests.add(digest);
    const refs = input.references.get(digest);
    if (refs === undefined) unindexed.push(digest);
    for (const ref of refs ?? []) {
      liveDigests.add(ref);
      visit(ref); // an index child
    }
    for (const referrer of referrers.get(digest) ?? []) visit(referrer);
  }
  const keepEveryLink = unindexed.length > 0;
  const deadLinks: string[] = [];
  for (const link of input.links) {
    if (liveDigests.has(link.digest) || now - link.linkedAt < graceMs || keepEveryLink) liveDigests.add(link.digest);
    else deadLinks.push(link.digest);
  }
  const deadManifests = input.manifests.filter((m) => !live.has(m.digest)).map((m) => m.digest);
  return { keptTags, droppedTags, liveManifests: live, deadManifests, liveDigests, deadLinks, unindexed };
}
