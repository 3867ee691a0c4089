import type { AnnounceRequest } from "../../shared/api/announce.js";
import { ShardBoard } from "./shard-view.js";
import { shardOf } from "./shard-router.js";
import { Swarm, type AnnounceOutcome, type SwarmOptions } from "./swarm.js";

/**
 * One swarm spread over `shards` tracker objects, in one process: what the edge does with one
 * Durable Object per shard (routes.ts, tracker.ts), for the fleet simulator and the benchmarks.
 * Routing (shardOf), the trade of summaries with the hub (shard 0) and when it happens
 * (Swarm.needsView before an answer, Swarm.exchangeDue after it) are the edge's own code; only the calls between objects are direct here.
 * `exchanges` counts those calls (object-to-object requests the edge would make).
 */
export class ShardedSwarm {
  readonly shards: Swarm[];
  private readonly board = new ShardBoard();
  exchanges = 0;
  private readonly now: () => number;

  constructor(count: number, options: Omit<SwarmOptions, "shard">) {
    this.now = options.now;
    this.shards = Array.from({ length: Math.max(1, count) }, (_, index) => new Swarm({ ...options, shard: { index, count: Math.max(1, count) } }));
  }

  /** The object an announce goes to. */
  shardOf(request: AnnounceRequest, identity: string): number {
    return shardOf(request.peerId, identity, this.shards.length);
  }

  /** Routes an announce to its shard and answers it there: `shard` says which object took it. */
  announce(request: AnnounceRequest, identity: string): AnnounceOutcome & { shard: number } {
    const shard = this.shardOf(request, identity);
    const swarm = this.shards[shard]!;
    if (swarm.needsView()) this.exchange(shard);
    const outcome = swarm.announce(request, identity);
    if (swarm.exchangeDue()) this.exchange(shard);
    return { ...outcome, shard };
  }

  /** What the alarms do (call it now and then): forget the silent, and tell the hub what changed. */
  expire(): void {
    for (const [shard, swarm] of this.shards.entries()) {
      swarm.expire();
      if (swarm.exchangeDue()) this.exchange(shard);
    }
  }

  get size(): number {
    return this.shards.reduce((n, s) => n + s.size, 0);
  }

  private exchange(shard: number): void {
    const swarm = this.shards[shard]!;
    if (shard !== 0) this.exchanges++;
    swarm.learn(this.board.post(swarm.summary(), this.now()));
  }
}
