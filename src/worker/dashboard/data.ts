import type { PushRecord, SwarmRecord } from "../build-index/catalog.js";
import type { Services } from "../services.js";
import type { ReplicationJob } from "../upstream/replication-queue.js";
import type { GcRun } from "../gc/run.js";
import type { RateSamples } from "../../shared/dashboard/rate-history.js";
import { usageMeter } from "./usage-meter.js";

export interface DashboardData {
  generatedAt: string;
  /** `pulls`: manifest GETs by tag, for the tags listed. */
  repositories: { name: string; tags: string[]; moreTags: boolean; pulls: Record<string, number> }[];
  moreRepositories: boolean;
  pushes: PushRecord[];
  swarms: SwarmRecord[];
  /** Blob bytes the edge served per second (`served`), the last minutes. */
  throughput: RateSamples;
  /** The latest garbage collection runs: bytes stored, reclaimable, freed. */
  gc: GcRun[];
  replication?: { targets: { prefix: string; url: string }[]; pending: number; failing: number; done: number; jobs: ReplicationJob[] };
}

/** Swarms whose tracker reported in this long count as live. */
const LIVE_SWARM_MS = 30_000;

/** What the edge's dashboard shows, gathered from the catalog, the repositories and the replication queue. */
export async function dashboardData(services: Services): Promise<DashboardData> {
  const catalog = services.catalog();
  // What this isolate counted goes in first, so a pull just made shows at once.
  await usageMeter.report(services);
  const [page, pushes, swarms, throughput] = await Promise.all([catalog.list(50, null), catalog.recentPushes(50), catalog.liveSwarms(LIVE_SWARM_MS), catalog.throughput()]);
  const counts = await catalog.pullCounts(page.items);
  const repositories = await Promise.all(
    page.items.map(async (name) => {
      const tags = await services.repository(name).listTags(10, null);
      const pulls = Object.fromEntries(counts.filter((p) => p.repository === name && tags.items.includes(p.tag)).map((p) => [p.tag, p.count]));
      return { name, tags: tags.items, moreTags: tags.more, pulls };
    }),
  );
  const gc = await services.gcRuns(5).catch(() => [] as GcRun[]);
  const data: DashboardData = { generatedAt: new Date().toISOString(), repositories, moreRepositories: page.more, pushes, swarms, throughput, gc };
  if (services.settings.replication.length > 0) {
    const status = await services.replication().status();
    data.replication = { targets: services.settings.replication.map((r) => ({ prefix: r.prefix, url: r.url })), ...status, jobs: status.jobs.slice(0, 20) };
  }
  return data;
}
