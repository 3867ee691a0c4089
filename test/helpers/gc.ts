import { readdir } from "node:fs/promises";
import path from "node:path";
import type { TestEdge } from "./edge.js";
import type { GcCounters } from "../../src/worker/gc/run.js";

export interface GcRunJson {
  id: number;
  phase: string;
  dryRun: boolean;
  finishedAt?: number;
  counters: GcCounters;
}

/** Starts a collection (or joins the one going on): the run as it starts. */
export async function startGc(url: string, options: { dryRun?: boolean; batchSize?: number; headers?: Record<string, string> } = {}): Promise<GcRunJson> {
  const start = await fetch(`${url}/shoal/v1/gc`, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...options.headers },
    body: JSON.stringify({ dryRun: options.dryRun ?? false, ...(options.batchSize ? { batchSize: options.batchSize } : {}) }),
  });
  if (start.status !== 202 && start.status !== 200) throw new Error(`POST /shoal/v1/gc: ${start.status} ${await start.text()}`);
  return ((await start.json()) as { run: GcRunJson }).run;
}

/** Starts a collection and waits for it to finish; its report. */
export async function runGc(url: string, options: { dryRun?: boolean; batchSize?: number; headers?: Record<string, string> } = {}): Promise<GcRunJson> {
  const run = await startGc(url, options);
  return waitForRun(url, run.id);
}

export async function waitForRun(url: string, id: number, timeoutMs = 60_000): Promise<GcRunJson> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const run = (await (await fetch(`${url}/shoal/v1/gc/runs/${id}`)).json()) as GcRunJson;
    if (run.phase === "done") return run;
    if (Date.now() > until) throw new Error(`gc run ${id} still at ${run.phase} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Every key in the edge's blob storage (miniflare's R2, or the Deno edge's files). */
export async function storedKeys(edge: TestEdge): Promise<string[]> {
  if (edge.miniflare) {
    const bucket = await edge.miniflare.getR2Bucket("BLOBS");
    const keys: string[] = [];
    let cursor: string | undefined;
    for (;;) {
      const page = await bucket.list({ limit: 1000, ...(cursor ? { cursor } : {}) });
      keys.push(...page.objects.map((o) => o.key));
      if (!page.truncated) return keys.sort();
      cursor = page.cursor;
    }
  }
  const dir = path.join(edge.stateDir, "edge-deno", "blobs", "objects");
  const names = await readdir(dir).catch(() => [] as string[]);
  return names.filter((n) => n.endsWith(".meta.json")).map((n) => decodeURIComponent(n.slice(0, -".meta.json".length))).sort();
}

/** Digests of the stored blobs (`blobs/sha256/<hex>`). */
export function blobDigests(keys: string[]): string[] {
  return keys.filter((k) => k.startsWith("blobs/")).map((k) => k.split("/").slice(1).join(":"));
}
