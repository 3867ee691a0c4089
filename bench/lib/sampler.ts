import { readFileSync } from "node:fs";
import { rssOf } from "../../test/helpers/rss.js";

/** Linux's clock ticks per second for /proc/<pid>/stat times (USER_HZ, 100 on every common kernel). */
const CLOCK_TICKS_PER_SECOND = 100;

/**
 * Samples CPU time and resident memory of a set of processes from /proc while they run, so
 * figures survive the processes exiting (a finished skopeo keeps its last reading).
 */
export class ProcessSampler {
  private readonly cpuTicks = new Map<number, { user: number; system: number }>();
  private readonly startTicks = new Map<number, { user: number; system: number }>();
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
        const ticks = { user: Number(fields[11]), system: Number(fields[12]) }; // utime, stime
        if (!this.startTicks.has(pid)) this.startTicks.set(pid, this.fromZero ? { user: 0, system: 0 } : ticks);
        this.cpuTicks.set(pid, ticks);
        this.peakRss = Math.max(this.peakRss, rssOf(pid));
      } catch {
        // exited: keep its last reading
      }
    }
  }

  /**
   * CPU seconds used by all the processes since they were first sampled (in all, and the part
   * spent in the kernel: sockets, files), and the largest RSS seen.
   */
  stop(): { cpuSeconds: number; systemCpuSeconds: number; peakRssBytes: number } {
    this.sample();
    clearInterval(this.timer);
    let user = 0;
    let system = 0;
    for (const [pid, now] of this.cpuTicks) {
      const start = this.startTicks.get(pid) ?? now;
      user += now.user - start.user;
      system += now.system - start.system;
    }
    return { cpuSeconds: (user + system) / CLOCK_TICKS_PER_SECOND, systemCpuSeconds: system / CLOCK_TICKS_PER_SECOND, peakRssBytes: this.peakRss };
  }
}
