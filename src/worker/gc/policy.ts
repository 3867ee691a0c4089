import { z } from "zod";

/**
 * Retention (`SHOAL_GC_RETENTION`): a JSON object from a repository prefix to a policy; a
 * repository takes the policy of its longest matching prefix ("" matches every repository):
 *
 *   SHOAL_GC_RETENTION='{"": {"untaggedDays": 30}, "ci/": {"keepLast": 10, "keepTags": "^(main|v[0-9].*)$", "untaggedDays": 1}}'
 *
 * - `keepLast`: keep the N most recently pushed tags (by the time the tag was last set); older tags
 *   are deleted by the collector, unless they match `keepTags`. Unset: every tag is kept.
 * - `keepTags`: a regular expression; matching tags are kept forever.
 * - `untaggedDays`: a manifest no kept tag reaches (directly, as an index child or as a referrer of
 *   a live manifest) is kept this many days after it was last pushed. Unset: kept forever, because
 *   deployments pin digests; deleted manifests are collected whatever the policy.
 */
export const RetentionPolicySchema = z
  .object({
    keepLast: z.number().int().nonnegative().optional(),
    keepTags: z
      .string()
      .max(1000)
      .refine((pattern) => {
        try {
          new RegExp(pattern);
          return true;
        } catch {
          return false;
        }
      }, "keepTags must be a regular expression")
      .optional(),
    untaggedDays: z.number().nonnegative().optional(),
  })
  .strict();
export type RetentionPolicy = z.infer<typeof RetentionPolicySchema>;

export interface PrefixedPolicy extends RetentionPolicy {
  prefix: string;
}

export function parseRetention(text: string | undefined): PrefixedPolicy[] {
  if (!text?.trim()) return [];
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error("SHOAL_GC_RETENTION is not valid JSON");
  }
  const parsed = z.record(z.string(), RetentionPolicySchema).safeParse(json);
  if (!parsed.success) {
    throw new Error(`SHOAL_GC_RETENTION: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
  }
  return Object.entries(parsed.data)
    .map(([prefix, policy]) => ({ prefix, ...policy }))
    .sort((a, b) => b.prefix.length - a.prefix.length);
}

/** The policy of the longest prefix `repository` starts with; none: keep every tag and manifest. */
export function policyFor(policies: PrefixedPolicy[], repository: string): RetentionPolicy {
  const match = policies.find((p) => repository.startsWith(p.prefix));
  if (!match) return {};
  const { prefix: _prefix, ...policy } = match;
  return policy;
}
