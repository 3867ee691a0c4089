import { createHash } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { Logger } from "pino";
import { z } from "zod";
import { bearerChallenge } from "../../shared/auth/scope.js";
import { OciError } from "../../shared/oci/errors.js";
import { EdgeUnavailableError, type EdgeClient } from "../edge/edge-client.js";
import { agentRealm } from "./push-proxy.js";

/** What the edge says about a client's credentials and one repository (`GET /shoal/v1/access`). */
const AccessAnswerSchema = z.object({
  open: z.boolean(),
  service: z.string(),
  account: z.string().nullable(),
  pull: z.boolean(),
  anonymousPull: z.boolean(),
});
type AccessAnswer = z.infer<typeof AccessAnswerSchema>;

/** How long an answer is reused before the edge is asked again. */
export const ACCESS_TTL_MS = 30_000;
/** With the edge unreachable, an older answer still stands for this long (then: refused). */
export const ACCESS_STALE_MS = 10 * 60_000;
const MAX_ENTRIES = 10_000;

interface Entry {
  answer: AccessAnswer;
  at: number;
}

/**
 * The agent's pull check. The agent fetches content with its own account, so it must not hand a
 * private repository's manifests and blobs — cached or not — to a client the edge would refuse:
 * before serving a read it asks the edge whether the client's credentials (passed on as they came)
 * may pull the repository, and reuses the answer for ACCESS_TTL_MS. An edge without auth, or a
 * repository anyone may pull, costs one question a TTL. With the edge down, answers up to
 * ACCESS_STALE_MS old stand; past that a repository that is not known to be public is refused
 * (fail closed), while an edge last seen open stays open.
 */
export class AccessGate {
  private readonly answers = new Map<string, Entry>();
  private lastOpen: Entry | undefined;
  /** One question in flight per key: a burst of pulls asks the edge once. */
  private readonly flights = new Map<string, Promise<Entry>>();

  constructor(
    private readonly edge: EdgeClient,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  async checkPull(req: IncomingMessage, repository: string): Promise<void> {
    const authorization = req.headers.authorization;
    if (this.lastOpen && this.now() - this.lastOpen.at < ACCESS_TTL_MS) return;
    const key = `${repository}\0${authorization ? createHash("sha256").update(authorization).digest("hex") : ""}`;
    const anonymousKey = `${repository}\0`;
    let entry = this.fresh(key) ?? this.fresh(anonymousKey, (a) => a.anonymousPull);
    if (!entry) {
      try {
        let flight = this.flights.get(key);
        if (!flight) {
          flight = this.ask(repository, authorization, agentRealm(req)).finally(() => this.flights.delete(key));
          this.flights.set(key, flight);
        }
        entry = await flight;
      } catch (error) {
        if (!(error instanceof EdgeUnavailableError)) throw error;
        entry = this.stale(key) ?? this.stale(anonymousKey, (a) => a.anonymousPull) ?? (this.lastOpen && this.now() - this.lastOpen.at < ACCESS_STALE_MS ? this.lastOpen : undefined);
        if (!entry) throw new OciError("UNKNOWN", `the edge is unreachable, so access to ${repository} cannot be checked`, { status: 503 });
        this.log.warn({ repository, err: error.message }, "edge unreachable: using the last access answer");
      }
      this.remember(key, entry);
      if (!authorization) this.remember(anonymousKey, entry);
      if (entry.answer.open) this.lastOpen = entry;
    }
    const { answer } = entry;
    if (answer.open || answer.pull) return;
    const scope = { type: "repository", name: repository, actions: ["pull"] };
    const realm = agentRealm(req);
    if (!authorization) throw new OciError("UNAUTHORIZED", `authentication required (pull on ${repository})`, { headers: { "WWW-Authenticate": bearerChallenge(realm, answer.service, scope) } });
    const headers = { "WWW-Authenticate": bearerChallenge(realm, answer.service, scope, "insufficient_scope") };
    if (!answer.account) throw new OciError("UNAUTHORIZED", `insufficient scope: no pull on ${repository}`, { headers });
    throw new OciError("DENIED", `${answer.account} may not pull ${repository}`, { headers });
  }

  private async ask(repository: string, authorization: string | undefined, realm: string): Promise<Entry> {
    const res = await this.edge.request(`/shoal/v1/access?repository=${encodeURIComponent(repository)}`, {
      method: "GET",
      headers: authorization ? { authorization } : {},
      onBehalfOfClient: true,
    });
    if (res.statusCode === 401) {
      // Wrong credentials: the edge's refusal, with the challenge pointing here.
      const error = await this.edge.failure(res);
      const challenge = res.headers["www-authenticate"];
      throw new OciError("UNAUTHORIZED", error.message, { headers: typeof challenge === "string" ? { "WWW-Authenticate": challenge.replace(/realm="[^"]*"/, `realm="${realm}"`) } : {} });
    }
    if (res.statusCode !== 200) throw await this.edge.failure(res).then((e) => (e instanceof EdgeUnavailableError ? e : new EdgeUnavailableError(`access check: ${e.message}`)));
    const parsed = AccessAnswerSchema.safeParse(await res.body.json());
    if (!parsed.success) throw new EdgeUnavailableError("the edge sent an invalid access answer");
    return { answer: parsed.data, at: this.now() };
  }

  private fresh(key: string, usable: (a: AccessAnswer) => boolean = () => true): Entry | undefined {
    const entry = this.answers.get(key);
    return entry && usable(entry.answer) && this.now() - entry.at < ACCESS_TTL_MS ? entry : undefined;
  }

  private stale(key: string, usable: (a: AccessAnswer) => boolean = () => true): Entry | undefined {
    const entry = this.answers.get(key);
    return entry && usable(entry.answer) && this.now() - entry.at < ACCESS_STALE_MS ? entry : undefined;
  }

  private remember(key: string, entry: Entry): void {
    if (this.answers.size >= MAX_ENTRIES) this.answers.delete(this.answers.keys().next().value!);
    this.answers.delete(key);
    this.answers.set(key, entry);
  }
}
