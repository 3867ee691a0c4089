import { readFileSync } from "node:fs";
import { processTree } from "../../src/devcluster/process-tree.js";

export { processTree };

/** Resident memory of a process and all its descendants (Linux /proc), in bytes. */
export function treeRss(rootPid: number): number {
  return processTree(rootPid).reduce((total, pid) => total + rssOf(pid), 0);
}

export function rssOf(pid: number): number {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Samples a value every `ms` until stopped; returns the peak. */
export function samplePeak(sample: () => number, ms = 100): { stop(): number } {
  let peak = sample();
  const timer = setInterval(() => (peak = Math.max(peak, sample())), ms);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(peak, sample());
    },
  };
}
