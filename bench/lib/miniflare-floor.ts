import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Miniflare } from "miniflare";
import { parseSize } from "../../src/agent-node/config.js";

/**
 * `tsx bench/lib/miniflare-floor.ts [SIZE]`: what this machine's miniflare costs for an R2 put
 * with nothing else around it: a bare Worker that pipes the request body into `R2.put` through a
 * `FixedLengthStream` (as the edge's monolithic PUT does), with and without R2's SHA-256 check.
 * Prints wall time and workerd's CPU for each put: the floor under the edge's push figures
 * (`npm run bench -- edge`) on this runtime.
 */
const WORKER = `export default { async fetch(req, env) {
  const url = new URL(req.url);
  const size = Number(req.headers.get("content-length"));
  const sha256 = url.searchParams.get("sha256");
  await env.BUCKET.put(url.pathname.slice(1), req.body.pipeThrough(new FixedLengthStream(size)), sha256 ? { sha256 } : {});
  return new Response(null, { status: 201 });
} }`;

async function workerdCpu(pid: string): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const size = parseSize(process.argv[2] ?? "64MiB");
  const dir = await mkdtemp(path.join(os.tmpdir(), "shoal-miniflare-floor-"));
  const miniflare = new Miniflare({ modules: true, script: WORKER, r2Buckets: ["BUCKET"], r2Persist: dir, host: "127.0.0.1", port: 0 });
  try {
    const origin = (await miniflare.ready).origin;
    const pid = execFileSync("pgrep", ["-n", "-x", "workerd"], { encoding: "utf8" }).trim();
    const body = randomBytes(size);
    const sha256 = createHash("sha256").update(body).digest("hex");
    for (const [label, query] of [["put", ""], ["put with sha256", `?sha256=${sha256}`]] as const) {
      for (let round = 1; round <= 3; round++) {
        const cpu = await workerdCpu(pid);
        const started = performance.now();
        const res = await fetch(`${origin}/object-${round}-${label.length}${query}`, { method: "PUT", body, headers: { "content-length": String(size) } });
        await res.arrayBuffer();
        if (res.status !== 201) throw new Error(`${label}: ${res.status}`);
        console.log(`${label.padEnd(16)} round ${round}: ${(performance.now() - started).toFixed(0).padStart(6)} ms, workerd CPU ${((await workerdCpu(pid)) - cpu).toFixed(2)} s`);
      }
    }
  } finally {
    await miniflare.dispose();
    await rm(dir, { recursive: true, force: true });
  }
}
