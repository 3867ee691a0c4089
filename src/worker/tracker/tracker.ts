import { DurableObject } from "cloudflare:workers";
import type { AnnounceRequest, AnnounceResponse } from "../../shared/api/announce.js";
import type { Env } from "../env.js";
import { Swarm } from "./swarm.js";

export const ANNOUNCE_INTERVAL_SECONDS = 3;
/** Three missed announces and a peer is gone. */
export const PEER_TTL_MS = ANNOUNCE_INTERVAL_SECONDS * 3 * 1000 + 1000;
export const MAX_HANDOUT = 30;
/** How often a tracker may tell the catalog of changed counts, and of unchanged ones (see report()). */
const REPORT_MS = 5_000;
const HEARTBEAT_MS = 10_000;

/**
 * The tracker of one swarm (`idFromName(digest)`): a thin shell over `Swarm`. State is in memory
 * (peers re-announce every few seconds, so an evicted object refills at once); an alarm forgets
 * peers that stop announcing even when nobody else announces.
 */
export class Tracker extends DurableObject<Env> {
  private readonly swarm = new Swarm({
    now: () => Date.now(),
    peerTtlMs: PEER_TTL_MS,
    intervalSeconds: ANNOUNCE_INTERVAL_SECONDS,
    maxHandout: MAX_HANDOUT,
  });
  private digest: string | undefined;
  private reported: { peers: number; seeders: number } | undefined;
  private reportedAt = 0;

  async announce(request: AnnounceRequest): Promise<AnnounceResponse> {
    const response = this.swarm.announce(request);
    await this.scheduleExpiry();
    await this.report(request.digest);
    return response;
  }

  async stats(): Promise<{ peers: number; seeders: number }> {
    return this.swarm.snapshot();
  }

  override async alarm(): Promise<void> {
    this.swarm.expire();
    await this.scheduleExpiry();
    if (this.digest) await this.report(this.digest);
  }

  /**
   * Tells the catalog (the dashboard's list of live swarms) this swarm's counts: a change at most
   * every REPORT_MS (a change held back is sent by an alarm), unchanged counts every HEARTBEAT_MS
   * while peers announce (the dashboard forgets swarms that stop reporting), and an emptied swarm at
   * once. A small call per swarm every few seconds, not one per announce.
   */
  private async report(digest: string): Promise<void> {
    this.digest = digest;
    const counts = this.swarm.snapshot();
    const now = Date.now();
    const changed = counts.peers !== this.reported?.peers || counts.seeders !== this.reported?.seeders;
    const since = now - this.reportedAt;
    const send = (changed && (since >= REPORT_MS || counts.peers === 0)) || (counts.peers > 0 && since >= HEARTBEAT_MS);
    if (!send) {
      if (changed) await this.wakeAt(this.reportedAt + REPORT_MS);
      return;
    }
    this.reported = counts;
    this.reportedAt = now;
    await this.env.CATALOG.get(this.env.CATALOG.idFromName("catalog"))
      .reportSwarm(digest, counts)
      .catch(() => undefined);
  }

  private async scheduleExpiry(): Promise<void> {
    const next = this.swarm.nextExpiry();
    if (next !== undefined) await this.wakeAt(next);
  }

  /** The alarm fires at `time` or earlier. */
  private async wakeAt(time: number): Promise<void> {
    const current = await this.ctx.storage.getAlarm();
    if (current === null || current > time) await this.ctx.storage.setAlarm(time);
  }
}
