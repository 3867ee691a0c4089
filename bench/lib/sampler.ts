import { readFileSync } from "node:fs";
import { rssOf } from "../../test/helpers/rss.js";

/** Linux's clock ticks per second for /proc/<pid>/stat times (USER_HZ, 100 on every common kernel). */
const CLOCK_TICKS_PER_SECOND = 100;

/**
 * Samples CPU time and resident memory of a set of processes from /proc while they run, so
 * figures survive the processes exiting (a finished skopeo keeps its last reading).
 */
export class ProcessSampler {
  private readonly cpuTicks = new Map<number, number>();
  private readonly startTicks = new Map<number, number>();
  private peakRss = 0;
  private readonly timer: NodeJS.Timeout;

  /** `fromZero`: the processes are new, count all their CPU time (else only from now on). */
  constructor(
    private readonly pids: () => number[],
    private readonly fromZero = false,
    intervalMs = 200,
  ) {
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
  }

  private sample(): void {
    for (const pid of this.pids()) {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
        const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        const ticks = Number(fields[11]) + Number(fields[12]); // utime + stime
        if (!this.startTicks.has(pid)) this.startTicks.set(pid, this.fromZero ? 0 : ticks);
        this.cpuTicks.set(pid, ticks);
        this.peakRss = Math.max(this.peakRss, rssOf(pid));
      } catch {
        // exited: keep its last reading
      }
    }
  }

  /** CPU seconds used by all the processes since they were first sampled, and the largest RSS seen. */
  stop(): { cpuSeconds: number; peakRssBytes: number } {
    this.sample();
    clearInterval(this.timer);
    let ticks = 0;
    for (const [pid, now] of this.cpuTicks) ticks += now - (this.startTicks.get(pid) ?? now);
    return { cpuSeconds: ticks / CLOCK_TICKS_PER_SECOND, peakRssBytes: this.peakRss };
  }
}
