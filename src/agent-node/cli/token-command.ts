import { randomBytes } from "node:crypto";
import { Command } from "commander";
import { ACTIONS, AuthSettingSchema, hashSecret, type AccessRule, type Action } from "../../shared/auth/policy.js";
import { CliError } from "./cli-error.js";

/**
 * `shoal token`: a push token (`user:token`) for SHOAL_PUSH_TOKENS, a cluster secret, or — with
 * `--access` — an account for SHOAL_AUTH: a fresh secret, and the setting with the account added
 * (to `--setting` or $SHOAL_AUTH when given), its secret stored only as a SHA-256.
 */
export function tokenCommand(): Command {
  return new Command("token")
    .description("make a push token (user:token for SHOAL_PUSH_TOKENS), an account for SHOAL_AUTH (--access), or a cluster secret")
    .option("--user <name>", "who the token is for", "ci")
    .option("--access <repository:actions>", "with SHOAL_AUTH: a rule such as 'team/*:pull,push' (repeatable; actions: pull, push, delete, gc)", collect, [])
    .option("--setting <json>", "the SHOAL_AUTH to add the account to (default: $SHOAL_AUTH, else an empty one)")
    .option("--cluster-secret", "make a cluster secret (clusterSecret in every agent's --secrets) instead")
    .action((flags: { user: string; access: string[]; setting?: string; clusterSecret?: boolean }) => {
      if (flags.clusterSecret) {
        process.stdout.write(`${randomBytes(32).toString("hex")}\n`);
        process.stderr.write("put it in every agent's secrets file as clusterSecret (the same one for the whole cluster)\n");
        return;
      }
      if (!/^[A-Za-z0-9._-]{1,64}$/.test(flags.user)) throw new CliError("--user takes letters, digits, '.', '_' and '-' (no ':' or ',')", 2);
      const secret = randomBytes(20).toString("hex");
      if (flags.access.length === 0) {
        process.stdout.write(`${flags.user}:${secret}\n`);
        process.stderr.write(
          "add it to the edge's SHOAL_PUSH_TOKENS (comma-separated; `npx wrangler secret put SHOAL_PUSH_TOKENS` on Cloudflare);\n" +
            "log in with: docker login -u <user> <edge host>   (the token is the password)\n",
        );
        return;
      }
      const setting = withAccount(flags.setting ?? process.env.SHOAL_AUTH, flags.user, hashSecret(secret), flags.access.map(parseRule));
      process.stdout.write(`${JSON.stringify(setting)}\n`);
      process.stderr.write(
        `the edge's SHOAL_AUTH with ${flags.user} added is above (\`npx wrangler secret put SHOAL_AUTH\` on Cloudflare; it holds no secret, only its SHA-256);\n` +
          `${flags.user}'s secret, shown once: ${secret}\n` +
          `log in with: docker login -u ${flags.user} <edge or agent host>   (the secret is the password)\n`,
      );
    });
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** `team/*:pull,push` → a rule (repository names hold no ':', so the last one splits). */
export function parseRule(text: string): AccessRule {
  const colon = text.lastIndexOf(":");
  const repository = colon > 0 ? text.slice(0, colon) : "";
  const actions = colon > 0 ? text.slice(colon + 1).split(",").filter(Boolean) : [];
  const bad = actions.filter((a) => !(ACTIONS as readonly string[]).includes(a));
  if (!repository || actions.length === 0 || bad.length) throw new CliError(`--access takes repository:actions with actions from ${ACTIONS.join(", ")} (got ${JSON.stringify(text)})`, 2);
  return { repository, actions: actions as Action[] };
}

function withAccount(existing: string | undefined, user: string, password: string, access: AccessRule[]) {
  let json: unknown = {};
  if (existing?.trim()) {
    try {
      json = JSON.parse(existing);
    } catch {
      throw new CliError("the SHOAL_AUTH given is not JSON", 2);
    }
  }
  const parsed = AuthSettingSchema.safeParse(json);
  if (!parsed.success) throw new CliError(`the SHOAL_AUTH given is invalid: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`, 2);
  return { ...parsed.data, users: { ...parsed.data.users, [user]: { password, access } } };
}
