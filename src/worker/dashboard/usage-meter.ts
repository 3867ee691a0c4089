import type { Services } from "../services.js";
import type { UsageReport } from "../build-index/catalog.js";

/** Least time between two reports of one isolate to the catalog. */
const REPORT_MS = 1_000;

/**
 * What this isolate served (blob bytes, manifest pulls by tag), counted in memory and reported to
 * the catalog at most once a second, so the dashboard's throughput plot and pull counts cost no
 * storage operation per request. A report waits (in the request's waitUntil) until a second has
 * passed since the last one, so the tail of a burst is reported too.
 */
class UsageMeter {
  private servedBytes = 0;
  private readonly pulls = new Map<string, { repository: string; tag: string; count: number }>();
  private reportedAt = 0;
  private pending: Promise<void> | undefined;

  served(bytes: number): void {
    this.servedBytes += bytes;
  }

  pulled(repository: string, tag: string): void {
    const key = `${repository}:${tag}`;
    const entry = this.pulls.get(key) ?? { repository, tag, count: 0 };
    entry.count++;
    this.pulls.set(key, entry);
  }

  /** Reports within a second (one report pending at a time); `waitUntil` keeps the request alive for it. */
  schedule(services: Services, waitUntil: (p: Promise<unknown>) => void): void {
    if (this.pending) return;
    const delay = Math.max(0, this.reportedAt + REPORT_MS - Date.now());
    this.pending = new Promise<void>((resolve) => setTimeout(resolve, delay))
      .then(() => this.report(services))
      .finally(() => (this.pending = undefined));
    waitUntil(this.pending);
  }

  /** Sends what was counted now (the dashboard does before reading, so its own isolate is current). */
  async report(services: Services): Promise<void> {
    const report: UsageReport = { servedBytes: this.servedBytes, pulls: [...this.pulls.values()] };
    if (report.servedBytes === 0 && report.pulls.length === 0) return;
    this.servedBytes = 0;
    this.pulls.clear();
    this.reportedAt = Date.now();
    await services
      .catalog()
      .recordUsage(report)
      .catch(() => undefined);
  }
}

/** One per isolate: module state lives as long as the isolate does. */
export const usageMeter = new UsageMeter();

/** The request's waitUntil, or (outside a Workers-style runtime) a promise left to run. */
export function waitUntilOf(c: { executionCtx: { waitUntil(p: Promise<unknown>): void } }): (p: Promise<unknown>) => void {
  try {
    const ctx = c.executionCtx;
    return (p) => ctx.waitUntil(p);
  } catch {
    return (p) => void p.catch(() => undefined);
  }
}
