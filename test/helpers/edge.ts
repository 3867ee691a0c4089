import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { startEdgeHost, type EdgeHost } from "../../src/devcluster/edge-host.js";
import { startDenoEdge } from "./deno-edge.js";

export interface TestEdge extends EdgeHost {
  stateDir: string;
  /** Stops the edge and starts it again on the same state (persistence checks). */
  restart(): Promise<TestEdge>;
  destroy(): Promise<void>;
}

/**
 * The real Worker under miniflare with persisted R2/KV/DO in a fresh directory; with
 * SHOAL_TEST_EDGE=deno, the same app on the self-hosted Deno edge instead (the worker suites run
 * against both: test/e2e/deno-edge.test.ts).
 */
export async function startTestEdge(given: Record<string, string> = {}, stateDir?: string): Promise<TestEdge> {
  // Test agents announce 127.0.0.1 (test/security/tracker-addresses.test.ts turns this off).
  const vars = { SHOAL_TRACKER_ALLOW_LOOPBACK: "true", ...given };
  const dir = stateDir ?? (await mkdtemp(path.join(os.tmpdir(), "shoal-edge-")));
  if (process.env.SHOAL_TEST_EDGE === "deno") return startDenoTestEdge(vars, dir);
  // The edge's own errors (a runtime it had to start again, one it could not reach) go to the test's output.
  const log = (record: Record<string, unknown>) => {
    if (record.level === "error") process.stderr.write(`edge: ${JSON.stringify(record)}\n`);
  };
  const host = await startEdgeHost({ stateDir: dir, port: 0, vars, log });
  const edge: TestEdge = {
    url: host.url,
    // Read through: the host starts a new runtime if its runtime stops answering.
    get runtimeUrl() {
      return host.runtimeUrl;
    },
    get miniflare() {
      return host.miniflare;
    },
    close: () => host.close(),
    stateDir: dir,
    async restart() {
      await host.close();
      return startTestEdge(vars, dir);
    },
    async destroy() {
      await host.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
  return edge;
}

async function startDenoTestEdge(vars: Record<string, string>, dir: string): Promise<TestEdge> {
  const deno = await startDenoEdge(dir, vars);
  const close = () => deno.service.stop();
  const edge = {
    url: deno.url,
    stateDir: dir,
    close,
    async restart() {
      await close();
      return startDenoTestEdge(vars, dir);
    },
    async destroy() {
      await close();
      await rm(dir, { recursive: true, force: true });
    },
  };
  return edge as unknown as TestEdge;
}
