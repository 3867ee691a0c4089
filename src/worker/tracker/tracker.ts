import { DurableObject } from "cloudflare:workers";
import type { AnnounceRequest } from "../../shared/api/announce.js";
import { edgeSettings, type Env } from "../env.js";
import { Swarm, type AnnounceOutcome } from "./swarm.js";
import { ShardBoard, type ShardSummary } from "./shard-view.js";
import { trackerObjectName } from "./shard-router.js";

import { ANNOUNCE_INTERVAL_SECONDS, MAX_HANDOUT } from "./constants.js";

export { ANNOUNCE_INTERVAL_SECONDS, MAX_HANDOUT };
/** How often a tracker may tell the catalog of changed counts, and of unchanged ones (see report()). */
const REPORT_MS = 5_000;
const HEARTBEAT_MS = 10_000;
/** A swarm this small sends a change after at most SMALL_REPORT_MS (its changes are few: a join, a completion per peer). */
const SMALL_SWARM_PEERS = 32;
const SMALL_REPORT_MS = 1_000;

/** Which shard of its swarm an object is (routes.ts picks it: shard-router.ts). */
export interface ShardPlace {
  index: number;
  count: number;
}

/**
 * The tracker of one swarm, or of one shard of it (`idFromName(trackerObjectName(…))`): a thin
 * shell over `Swarm`. Shard 0 is also the hub of a sharded swarm: it keeps the other shards'
 * summaries (ShardBoard) and trades them for each shard's own (`trade`), which a shard asks for
 * when `Swarm.needsView` (before answering) or `Swarm.exchangeDue` (after) says so (one call in flight at a time). State is in memory
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
  private place: ShardPlace = { index: 0, count: 1 };
  private readonly board = new ShardBoard();
  private exchanging: Promise<void> | undefined;

  /** `identity`: the announcer as the edge saw it (`account:NAME`, else `address:IP`). */
  async announce(request: AnnounceRequest, identity: string, place: ShardPlace = { index: 0, count: 1 }): Promise<AnnounceOutcome> {
    this.placeAs(place);
    this.digest = request.digest;
    if (this.swarm().needsView()) await this.exchange();
    const outcome = this.swarm().announce(request, identity);
    // After the answer is computed, not before: the announcer does not wait for the hub. A change
    // that may not be told yet is told by the alarm (a shard's last peers may never announce again).
    if (this.swarm().exchangeDue()) void this.exchange();
    else {
      const at = this.swarm().nextExchangeAt();
      if (at !== undefined) await this.wakeAt(at);
    }
    await this.scheduleExpiry();
    await this.report(request.digest);
    return outcome;
  }

  /** This object's counts; the hub of a sharded swarm adds the other shards' (as they last told it). */
  async stats(): Promise<{ peers: number; seeders: number }> {
    return this.counts();
  }

  private counts(): { peers: number; seeders: number } {
    const own = this.swarm().snapshot();
    if (this.place.count <= 1) return own;
    const others = this.board.totals(Date.now(), 0);
    return { peers: own.peers + others.peers, seeders: own.seeders + others.seeders };
  }

  /** The hub's side of a trade: keeps a shard's summary, answers with the others' (its own among them). */
  async trade(digest: string, place: ShardPlace, summary: ShardSummary): Promise<ShardSummary[]> {
    this.placeAs({ index: 0, count: place.count });
    this.digest = digest;
    const swarm = this.swarm();
    const others = this.board.post(summary, Date.now());
    if (swarm.size > 0) others.push(swarm.summary(true));
    await this.report(digest);
    return others;
  }

  override async alarm(): Promise<void> {
    this.alarmAt = undefined;
    this.swarm().expire();
    if (this.swarm().exchangeDue()) await this.exchange();
    await this.scheduleExpiry();
    if (this.digest) await this.report(this.digest);
  }

  /** The first call tells an object which shard it is (the name says it too; this saves parsing it). */
  private placeAs(place: ShardPlace): void {
    if (!this.swarmState) this.place = place;
  }

  /** Trades summaries with the hub (shard 0 does it in place); a failed call is retried later. */
  private exchange(): Promise<void> {
    this.exchanging ??= (async () => {
      const swarm = this.swarm();
      const summary = swarm.summary();
      try {
        if (this.place.index === 0) return swarm.learn(this.board.post(summary, Date.now()));
        const hub = this.env.TRACKER.get(this.env.TRACKER.idFromName(trackerObjectName(this.digest!, 0, this.place.count)));
        swarm.learn(await hub.trade(this.digest!, this.place, summary));
      } catch {
        swarm.learn(undefined);
      }
    })().finally(() => (this.exchanging = undefined));
    return this.exchanging;
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
      shard: this.place,
    });
    return this.swarmState;
  }

  /**
   * Tells the catalog (the dashboard's list of live swarms) this swarm's counts: a change at most
   * every REPORT_MS (a change held back is sent by an alarm), unchanged counts every HEARTBEAT_MS
   * while peers announce (the dashboard forgets swarms that stop reporting), and an emptied swarm at
   * once. A small call per swarm every few seconds, not one per announce. A small swarm's change
   * waits at most SMALL_REPORT_MS: with REPORT_MS alone, a peer that joins and completes within
   * five seconds (any small blob) showed as a leecher, "1 peer, 0 seeders", for that long again
   * after it was seeding, and longer with the page's own refresh.
   */
  private async report(digest: string): Promise<void> {
    this.digest = digest;
    // A sharded swarm is reported by its hub, for all its shards (they tell it their counts).
    if (this.place.index !== 0) return;
    const counts = this.counts();
    const now = Date.now();
    const changed = counts.peers !== this.reported?.peers || counts.seeders !== this.reported?.seeders;
    const since = now - this.reportedAt;
    const wait = counts.peers <= SMALL_SWARM_PEERS ? SMALL_REPORT_MS : REPORT_MS;
    const send = (changed && (since >= wait || counts.peers === 0)) || (counts.peers > 0 && since >= HEARTBEAT_MS);
    if (!send) {
      if (changed) await this.wakeAt(this.reportedAt + wait);
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
