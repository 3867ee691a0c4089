import { DurableObject } from "cloudflare:workers";
import type { AnnounceRequest, AnnounceResponse } from "../../shared/api/announce.js";
import type { Env } from "../env.js";
import { Swarm } from "./swarm.js";

export const ANNOUNCE_INTERVAL_SECONDS = 3;
/** Three missed announces and a peer is gone. */
export const PEER_TTL_MS = ANNOUNCE_INTERVAL_SECONDS * 3 * 1000 + 1000;
export const MAX_HANDOUT = 30;

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

  async announce(request: AnnounceRequest): Promise<AnnounceResponse> {
    const response = this.swarm.announce(request);
    await this.scheduleExpiry();
    return response;
  }

  async stats(): Promise<{ peers: number; seeders: number }> {
    return this.swarm.snapshot();
  }

  override async alarm(): Promise<void> {
    this.swarm.expire();
    await this.scheduleExpiry();
  }

  private async scheduleExpiry(): Promise<void> {
    const next = this.swarm.nextExpiry();
    if (next === undefined) return;
    const current = await this.ctx.storage.getAlarm();
    if (current === null || current > next) await this.ctx.storage.setAlarm(next);
  }
}
