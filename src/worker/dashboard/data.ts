import type { PushRecord, SwarmRecord } from "../build-index/catalog.js";
import type { Services } from "../services.js";
import type { ReplicationJob } from "../upstream/replication-queue.js";
import type { GcRun } from "../gc/run.js";

export interface DashboardData {
  generatedAt: string;
  repositories: { name: string; tags: string[]; moreTags: boolean }[];
  moreRepositories: boolean;
  pushes: PushRecord[];
  swarms: SwarmRecord[];
  /** The latest garbage collection runs: bytes stored, reclaimable, freed. */
  gc: GcRun[];
  replication?: { targets: { prefix: string; url: string }[]; pending: number; failing: number; done: number; jobs: ReplicationJob[] };
}

/** Swarms whose tracker reported in this long count as live. */
const LIVE_SWARM_MS = 30_000;

/** What the edge's dashboard shows, gathered from the catalog, the repositories and the replication queue. */
export async function dashboardData(services: Services): Promise<DashboardData> {
  const catalog = services.catalog();
  const [page, pushes, swarms] = await Promise.all([catalog.list(50, null), catalog.recentPushes(50), catalog.liveSwarms(LIVE_SWARM_MS)]);
  const repositories = await Promise.all(
    page.items.map(async (name) => {
      const tags = await services.repository(name).listTags(10, null);
      return { name, tags: tags.items, moreTags: tags.more };
    }),
  );
  const gc = await services.gcRuns(5).catch(() => [] as GcRun[]);
  const data: DashboardData = { generatedAt: new Date().toISOString(), repositories, moreRepositories: page.more, pushes, swarms, gc };
  if (services.settings.replication.length > 0) {
    const status = await services.replication().status();
    data.replication = { targets: services.settings.replication.map((r) => ({ prefix: r.prefix, url: r.url })), ...status, jobs: status.jobs.slice(0, 20) };
  }
  return data;
}
