import { Hono, type Context } from "hono";
import { OciError } from "../../shared/oci/errors.js";
import { ANNOUNCE_MAX_BYTES, AnnounceRequestSchema } from "../../shared/api/announce.js";
import { sourceIdentity } from "../../shared/p2p/peer-address.js";
import { readBodyCapped } from "../registry/http.js";
import { shardOf } from "./shard-router.js";
import type { AppEnv } from "../services.js";

export const trackerRoutes = new Hono<AppEnv>();

/**
 * Who is announcing, as the tracker binds peer ids to it: the account the auth middleware found
 * (an account's credentials, or a token's subject), else the address the request came from.
 * Cloudflare sets `CF-Connecting-IP` itself (a client's own is overwritten); the devcluster's front
 * and the Deno edge set it from the socket.
 */
export function announcerIdentity(c: Context<AppEnv>): string {
  const identity = c.get("identity");
  if (identity?.kind === "account") return `account:${identity.account.name}`;
  if (identity?.kind === "token") return `account:${identity.account?.name ?? identity.sub}`;
  const ip = c.req.header("CF-Connecting-IP");
  return ip ? sourceIdentity(ip) : "address:unknown";
}

/** `POST /shoal/v1/announce`: an agent's announce for one swarm; answers with a handout. */
trackerRoutes.post("/shoal/v1/announce", async (c) => {
  const bytes = await readBodyCapped(c.req.raw, ANNOUNCE_MAX_BYTES, () =>
    new OciError("SIZE_INVALID", `an announce is at most ${ANNOUNCE_MAX_BYTES} bytes`, { status: 413 }),
  );
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new OciError("UNSUPPORTED", "announce body is not JSON", { status: 400 });
  }
  const parsed = AnnounceRequestSchema.safeParse(json);
  if (!parsed.success) {
    throw new OciError("UNSUPPORTED", `invalid announce: ${parsed.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ")}`, { status: 400 });
  }
  const services = c.get("services");
  const identity = announcerIdentity(c);
  const count = services.settings.trackerShards;
  const index = shardOf(parsed.data.peerId, identity, count);
  const outcome = await services.tracker(parsed.data.digest, index, count).announce(parsed.data, identity, { index, count });
  if (!outcome.ok) throw new OciError(outcome.status === 429 ? "TOOMANYREQUESTS" : "DENIED", `announce refused: ${outcome.reason}`);
  return c.json(outcome.response);
});
