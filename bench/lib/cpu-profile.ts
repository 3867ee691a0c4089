import { readFile, readdir } from "node:fs/promises";
import path from "node:path";

/** The parts of a V8 `.cpuprofile` (what `node --cpu-prof` writes) that a summary needs. */
interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileRow {
  name: string;
  /** Milliseconds sampled in this function itself (self time), over all the profiles. */
  selfMs: number;
  /** Milliseconds sampled in it or anything it called (counted once per sample). */
  totalMs: number;
}

/**
 * Self and total time per function over every `.cpuprofile` in `dir` (one per agent process), so
 * a run of many agents reads as one breakdown. Functions are keyed by name and source file (the
 * bundle's line numbers change from build to build; names do not).
 */
export async function summarizeProfiles(dir: string): Promise<{ profiles: number; sampledMs: number; rows: ProfileRow[] }> {
  const files = (await readdir(dir)).filter((f) => f.endsWith(".cpuprofile"));
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  let sampledMs = 0;
  for (const file of files) {
    const profile = JSON.parse(await readFile(path.join(dir, file), "utf8")) as CpuProfile;
    const byId = new Map(profile.nodes.map((n) => [n.id, n]));
    const parent = new Map<number, number>();
    for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
    const key = (id: number) => {
      const { functionName, url } = byId.get(id)!.callFrame;
      return `${functionName || "(anonymous)"} ${url ? path.basename(url) : ""}`.trim();
    };
    profile.samples.forEach((id, i) => {
      const ms = (profile.timeDeltas[i] ?? 0) / 1000;
      sampledMs += ms;
      self.set(key(id), (self.get(key(id)) ?? 0) + ms);
      const seen = new Set<string>();
      for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
        const k = key(at);
        if (seen.has(k)) continue;
        seen.add(k);
        total.set(k, (total.get(k) ?? 0) + ms);
      }
    });
  }
  const rows = [...total.entries()].map(([name, totalMs]) => ({ name, selfMs: self.get(name) ?? 0, totalMs }));
  return { profiles: files.length, sampledMs, rows };
}

/** `tsx bench/lib/cpu-profile.ts DIR [N]`: the N functions with the most self time, then by total. */
if (import.meta.url === `file://${process.argv[1]}`) {
  const [dir, count = "30"] = process.argv.slice(2);
  if (!dir) throw new Error("usage: tsx bench/lib/cpu-profile.ts DIR [N]");
  const { profiles, sampledMs, rows } = await summarizeProfiles(dir);
  const pct = (ms: number) => `${((100 * ms) / sampledMs).toFixed(1).padStart(5)}%`;
  console.log(`${profiles} profiles, ${(sampledMs / 1000).toFixed(1)} s sampled`);
  console.log("\nself time:");
  for (const r of [...rows].sort((a, b) => b.selfMs - a.selfMs).slice(0, Number(count))) console.log(`${pct(r.selfMs)} ${(r.selfMs / 1000).toFixed(2).padStart(7)} s  ${r.name}`);
  console.log("\ntotal time:");
  for (const r of [...rows].sort((a, b) => b.totalMs - a.totalMs).slice(0, Number(count))) console.log(`${pct(r.totalMs)} ${(r.totalMs / 1000).toFixed(2).padStart(7)} s  ${r.name}`);
}
