import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { startEdgeHost, type EdgeHost } from "../../src/devcluster/edge-host.js";

export interface TestEdge extends EdgeHost {
  stateDir: string;
  /** Stops the edge and starts it again on the same state (persistence checks). */
  restart(): Promise<TestEdge>;
  destroy(): Promise<void>;
}

/** The real Worker under miniflare with persisted R2/KV/DO in a fresh directory. */
export async function startTestEdge(vars: Record<string, string> = {}, stateDir?: string): Promise<TestEdge> {
  const dir = stateDir ?? (await mkdtemp(path.join(os.tmpdir(), "shoal-edge-")));
  const host = await startEdgeHost({ stateDir: dir, port: 0, vars });
  const edge: TestEdge = {
    ...host,
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
