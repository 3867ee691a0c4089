import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { processTree } from "../../src/devcluster/process-tree.js";
import { startEdgeProcess } from "../helpers/processes.js";
import { pushBlobChunked } from "../helpers/registry-client.js";

/**
 * The edge's runtime (workerd) stops answering while its process lives on — seen: its main thread
 * spinning in V8's sweeper, accepting nothing. Stopped here with SIGSTOP, which looks the same from
 * outside. The edge's front notices and starts a new runtime on the same state.
 */
let home: string;
let edge: Awaited<ReturnType<typeof startEdgeProcess>>;

beforeAll(async () => {
  home = await mkdtemp(path.join(os.tmpdir(), "shoal-runtime-"));
  edge = await startEdgeProcess(home);
});
afterAll(async () => {
  await edge?.proc.stop();
  await rm(home, { recursive: true, force: true });
});

function runtimePids(): number[] {
  return processTree(edge.proc.programPid()).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("workerd");
    } catch {
      return false;
    }
  });
}

describe("an edge runtime that stops answering", () => {
  it("is replaced by a new one on the same state, and the edge answers again", async () => {
    const blob = randomBytes(3 * 1024 * 1024);
    const digest = await pushBlobChunked(edge.url, "runtime/blob", blob, 1024 * 1024);
    const [frozen] = runtimePids();
    expect(frozen).toBeDefined();
    process.kill(frozen!, "SIGSTOP");
    try {
      const stalled = await fetch(`${edge.url}/v2/runtime/blob/blobs/${digest}`, { method: "HEAD", signal: AbortSignal.timeout(2_000) }).then(
        (res) => res.status,
        () => "no answer",
      );
      expect(stalled).toBe("no answer");

      // Asked every 5 s (10 s to answer), restarted after 30 s with nothing from it: up again within ~45 s.
      const deadline = Date.now() + 90_000;
      let status: number | string = "no answer";
      while (Date.now() < deadline) {
        status = await fetch(`${edge.url}/v2/runtime/blob/blobs/${digest}`, { method: "HEAD", signal: AbortSignal.timeout(2_000) }).then(
          (res) => res.status,
          () => "no answer",
        );
        if (status === 200) break;
        await new Promise((r) => setTimeout(r, 500));
      }
      expect(status).toBe(200);
      expect(edge.proc.output).toMatch(/the edge runtime stopped answering: starting it again/);
      expect(edge.proc.output).toMatch(/the edge runtime answers again/);
      expect(runtimePids()).not.toContain(frozen);

      // The same state: the blob pushed before reads back whole, and a new push lands.
      const res = await fetch(`${edge.url}/v2/runtime/blob/blobs/${digest}`);
      expect(Buffer.from(await res.arrayBuffer()).equals(blob)).toBe(true);
      await pushBlobChunked(edge.url, "runtime/blob", randomBytes(2 * 1024 * 1024), 1024 * 1024);
    } finally {
      try {
        process.kill(frozen!, "SIGKILL");
      } catch {
        // gone: the edge disposed of it
      }
    }
  }, 150_000);
});
