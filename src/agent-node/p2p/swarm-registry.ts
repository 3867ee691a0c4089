import type { Digest } from "../../shared/oci/digest.js";
import type { SwarmSession } from "./swarm-session.js";

/**
 * The swarms this agent is downloading in, by digest. The blob fetcher adds a session when a
 * download starts and removes it once the blob is in the store; the peer server serves the
 * session's verified pieces to other peers meanwhile.
 */
export class SwarmRegistry {
  private readonly sessions = new Map<Digest, SwarmSession>();

  get(digest: Digest): SwarmSession | undefined {
    return this.sessions.get(digest);
  }

  add(session: SwarmSession): void {
    this.sessions.set(session.digest, session);
  }

  remove(session: SwarmSession): void {
    if (this.sessions.get(session.digest) === session) this.sessions.delete(session.digest);
  }

  list(): SwarmSession[] {
    return [...this.sessions.values()];
  }

  /** Stops every session (agent shutdown). */
  stopAll(): void {
    for (const session of this.sessions.values()) session.stop(new Error("agent stopping"));
    this.sessions.clear();
  }
}
