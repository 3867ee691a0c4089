import { z } from "zod";
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex } from "@noble/hashes/utils.js";
import { constantTimeEqual, parseTokenList } from "./credentials.js";

/**
 * Accounts and their permissions (Web-standard code: the edge decides with it, the CLI prints it).
 * One setting, `SHOAL_AUTH`: users (people and robots) with a secret and access rules, plus the
 * rules for anonymous clients. A rule gives actions on the repositories its glob matches.
 */
export const ACTIONS = ["pull", "push", "delete", "gc"] as const;
export type Action = (typeof ACTIONS)[number];

/** `*` in a repository glob matches any run of characters, slashes included (`team/*` covers `team/a/b`). */
export const AccessRuleSchema = z.object({
  repository: z.string().min(1).max(256),
  actions: z.array(z.enum(ACTIONS)).min(1),
});
export type AccessRule = z.infer<typeof AccessRuleSchema>;

/**
 * A user's `password` is the secret itself or its SHA-256 as `sha256:<64 hex>` (what `shoal token
 * --access` prints: the setting then holds no secret). Secrets are compared as SHA-256 digests in
 * constant time; a plain SHA-256 is enough because generated secrets carry 160+ bits.
 */
export const AuthSettingSchema = z
  .object({
    users: z
      .record(
        z.string().regex(/^[A-Za-z0-9._@-]{1,64}$/, "user names take letters, digits, '.', '_', '@' and '-'"),
        z.object({ password: z.string().min(16, "a password needs 16+ characters"), access: z.array(AccessRuleSchema).default([]) }).strict(),
      )
      .default({}),
    anonymous: z.array(AccessRuleSchema).default([]),
  })
  .strict();
export type AuthSetting = z.infer<typeof AuthSettingSchema>;

export interface Account {
  name: string;
  /** SHA-256 of the secret. */
  secretDigest: Uint8Array;
  access: AccessRule[];
}

/** Who may do what: the parsed settings. `open`: no auth configured at all (a trusted network). */
export interface AuthPolicy {
  open: boolean;
  accounts: Account[];
  anonymous: AccessRule[];
}

export const OPEN_POLICY: AuthPolicy = { open: true, accounts: [], anonymous: [{ repository: "*", actions: [...ACTIONS] }] };

const EVERYTHING: AccessRule = { repository: "*", actions: ["pull", "push", "delete", "gc"] };

/**
 * Builds the policy from `SHOAL_AUTH` and the `SHOAL_PUSH_TOKENS` shorthand (its users may do
 * everything everywhere; everyone may pull unless `pullAuth`). Fails closed with a one-line reason:
 * a token list that names nobody, pull auth without any account.
 */
export function buildPolicy(input: { auth?: string | undefined; pushTokens?: string | undefined; pullAuth: boolean }): AuthPolicy {
  const { auth, pushTokens, pullAuth } = input;
  const hasTokens = pushTokens !== undefined && pushTokens !== "";
  const hasAuth = auth !== undefined && auth.trim() !== "";
  if (!hasTokens && !hasAuth) {
    if (pullAuth) throw new Error("SHOAL_PULL_AUTH=true needs accounts (SHOAL_AUTH or SHOAL_PUSH_TOKENS); refusing to run open");
    return OPEN_POLICY;
  }
  const accounts: Account[] = [];
  let anonymous: AccessRule[] = [{ repository: "*", actions: ["pull"] }];
  if (hasTokens) {
    const tokens = parseTokenList(pushTokens);
    if (tokens.length === 0) throw new Error("SHOAL_PUSH_TOKENS lists no user:token; refusing to run open");
    for (const { user, token } of tokens) accounts.push({ name: user, secretDigest: digestOf(token), access: [EVERYTHING] });
  }
  if (hasAuth) {
    let json: unknown;
    try {
      json = JSON.parse(auth);
    } catch {
      throw new Error("SHOAL_AUTH is not valid JSON");
    }
    const parsed = AuthSettingSchema.safeParse(json);
    if (!parsed.success) {
      // Paths only: the values hold secrets.
      throw new Error(`SHOAL_AUTH: ${parsed.error.issues.map((i) => `${i.path.join(".") || "(top)"}: ${i.message}`).join("; ")}`);
    }
    for (const [name, user] of Object.entries(parsed.data.users)) {
      if (accounts.some((a) => a.name === name)) throw new Error(`SHOAL_AUTH: user ${name} is also in SHOAL_PUSH_TOKENS`);
      accounts.push({ name, secretDigest: secretDigest(user.password), access: user.access });
    }
    anonymous = parsed.data.anonymous;
  }
  if (pullAuth) {
    if (accounts.length === 0) throw new Error("SHOAL_PULL_AUTH=true needs at least one account; refusing to run");
    anonymous = [];
  }
  return { open: false, accounts, anonymous };
}

/** `*` matches any run of characters (slashes too); everything else literally. */
export function globMatches(glob: string, repository: string): boolean {
  const pattern = glob.split("*").map((part) => part.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join(".*");
  return new RegExp(`^${pattern}$`).test(repository);
}

/** Rules → may `action` be done on `repository`? */
export function rulesAllow(rules: readonly AccessRule[], action: Action, repository: string): boolean {
  return rules.some((rule) => rule.actions.includes(action) && globMatches(rule.repository, repository));
}

/**
 * The check everything else calls: may this account (undefined: an anonymous client) do `action`
 * on `repository`? Anonymous rules apply to accounts too. `gc` is a registry-wide right: ask it
 * with repository `*` (a rule for `*`, e.g. `{"repository":"*","actions":["gc"]}`, grants it).
 */
export function can(policy: AuthPolicy, account: Account | undefined, action: Action, repository: string): boolean {
  if (policy.open) return true;
  if (rulesAllow(policy.anonymous, action, repository)) return true;
  return account !== undefined && rulesAllow(account.access, action, repository);
}

/** The account whose name and secret these are, comparing every account in constant time. */
export function findAccount(policy: AuthPolicy, name: string | undefined, secret: string): Account | undefined {
  const digest = digestOf(secret);
  const nameDigest = name === undefined ? undefined : digestOf(name);
  let found: Account | undefined;
  for (const account of policy.accounts) {
    const secretOk = constantTimeEqual(digest, account.secretDigest);
    const nameOk = nameDigest ? constantTimeEqual(nameDigest, digestOf(account.name)) : true;
    if (secretOk && nameOk && !found) found = account;
  }
  return found;
}

/** `sha256:<hex>` of a secret, as the setting may hold it instead of the secret. */
export function hashSecret(secret: string): string {
  return `sha256:${bytesToHex(digestOf(secret))}`;
}

function secretDigest(password: string): Uint8Array {
  const hashed = /^sha256:([0-9a-f]{64})$/.exec(password);
  if (!hashed) return digestOf(password);
  return Uint8Array.from(hashed[1]!.match(/../g)!.map((h) => parseInt(h, 16)));
}

function digestOf(text: string): Uint8Array {
  return sha256(new TextEncoder().encode(text));
}
