import { DurableObject } from "cloudflare:workers";
import type { AnnounceRequest } from "../../shared/api/announce.js";
import { edgeSettings, type Env } from "../env.js";
import { Swarm, type AnnounceOutcome } from "./swarm.js";

import { ANNOUNCE_INTERVAL_SECONDS, MAX_HANDOUT } from "./constants.js";

export { ANNOUNCE_INTERVAL_SECONDS, MAX_HANDOUT };
/** How often a tracker may tell the catalog of changed counts, and of unchanged ones (see report()). */
const REPORT_MS = 5_000;
const HEARTBEAT_MS = 10_000;

/**
 * The tracker of one swarm (`idFromName(digest)`): a thin shell over `Swarm`. State is in memory
 * (peers re-announce every interval, so an evicted object refills within one); an alarm forgets
 * peers that stop announcing even when nobody else announces. An announce touches no storage: the
 * alarm time is remembered here, and set only when it must move earlier.
 */
export class Tracker extends DurableObject<Env> {
  private swarmState: Swarm | undefined;
  private digest: string | undefined;
  private reported: { peers: number; seeders: number } | undefined;
  private reportedAt = 0;
  private alarmAt: number | undefined;

  /** `identity`: the announcer as the edge saw it (`account:NAME`, else `address:IP`). */
  async announce(request: AnnounceRequest, identity: string): Promise<AnnounceOutcome> {
    const outcome = this.swarm().announce(request, identity);
    await this.scheduleExpiry();
    await this.report(request.digest);
    return outcome;
  }

  async stats(): Promise<{ peers: number; seeders: number }> {
    return this.swarm().snapshot();
  }

  override async alarm(): Promise<void> {
    this.alarmAt = undefined;
    this.swarm().expire();
    await this.scheduleExpiry();
    if (this.digest) await this.report(this.digest);
  }

  /** Built at first use, from the settings of the edge's environment. */
  private swarm(): Swarm {
    const settings = (this.swarmState ? undefined : edgeSettings(this.env))!;
    this.swarmState ??= new Swarm({
      now: () => Date.now(),
      baseIntervalSeconds: ANNOUNCE_INTERVAL_SECONDS,
      maxHandout: MAX_HANDOUT,
      allowLoopback: settings.trackerAllowLoopback,
      maxPeersPerAddress: settings.trackerPeersPerAddress,
    });
    return this.swarmState;
  }

  /**
   * Tells the catalog (the dashboard's list of live swarms) this swarm's counts: a change at most
   * every REPORT_MS (a change held back is sent by an alarm), unchanged counts every HEARTBEAT_MS
   * while peers announce (the dashboard forgets swarms that stop reporting), and an emptied swarm at
   * once. A small call per swarm every few seconds, not one per announce.
   */
  private async report(digest: string): Promise<void> {
    this.digest = digest;
    const counts = this.swarm().snapshot();
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
    const next = this.swarm().nextExpiry();
    if (next !== undefined) await this.wakeAt(next);
  }

  /** The alarm fires at `time` or earlier. */
  private async wakeAt(time: number): Promise<void> {
    if (this.alarmAt !== undefined && this.alarmAt <= time) return;
    const current = await this.ctx.storage.getAlarm();
    if (current === null || current > time) await this.ctx.storage.setAlarm(time);
    this.alarmAt = Math.min(current ?? time, time);
  }
}
