import { randomBytes } from "node:crypto";
import { Command } from "commander";
import { CliError } from "./cli-error.js";

/** `shoal token`: a push token (`user:token`) for SHOAL_PUSH_TOKENS, or a cluster secret. */
export function tokenCommand(): Command {
  return new Command("token")
    .description("make a push token (user:token for SHOAL_PUSH_TOKENS) or, with --cluster-secret, a secret for the agents' peers")
    .option("--user <name>", "who the token is for", "ci")
    .option("--cluster-secret", "make a cluster secret (clusterSecret in every agent's --secrets) instead")
    .action((flags: { user: string; clusterSecret?: boolean }) => {
      if (flags.clusterSecret) {
        process.stdout.write(`${randomBytes(32).toString("hex")}\n`);
        process.stderr.write("put it in every agent's secrets file as clusterSecret (the same one for the whole cluster)\n");
        return;
      }
      if (!/^[A-Za-z0-9._-]{1,64}$/.test(flags.user)) throw new CliError("--user takes letters, digits, '.', '_' and '-' (no ':' or ',')", 2);
      process.stdout.write(`${flags.user}:${randomBytes(20).toString("hex")}\n`);
      process.stderr.write(
        "add it to the edge's SHOAL_PUSH_TOKENS (comma-separated; `npx wrangler secret put SHOAL_PUSH_TOKENS` on Cloudflare);\n" +
          "log in with: docker login -u <user> <edge host>   (the token is the password)\n",
      );
    });
}
