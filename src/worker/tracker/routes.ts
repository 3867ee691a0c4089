import { Hono } from "hono";
import { OciError } from "../../shared/oci/errors.js";
import { ANNOUNCE_MAX_BYTES, AnnounceRequestSchema } from "../../shared/api/announce.js";
import { readBodyCapped } from "../registry/http.js";
import type { AppEnv } from "../services.js";

export const trackerRoutes = new Hono<AppEnv>();

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
  const response = await c.get("services").tracker(parsed.data.digest).announce(parsed.data);
  return c.json(response);
});
