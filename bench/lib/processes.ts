import path from "node:path";
import { PROJECT_ROOT } from "../../src/devcluster/build-worker.js";
import { ServiceProcess } from "../../test/helpers/service-process.js";

/** How much of a process's most recent output is kept (for errors and debug logs). */
const OUTPUT_KEEP_CHARS = 4 << 20;

/**
 * A server process for a benchmark (the tests' ServiceProcess, with a longer start-up allowance).
 * A TypeScript program (`TSX` as the command) runs as one process, `node --import tsx`: the `tsx`
 * wrapper may SIGKILL a busy child instead of relaying SIGTERM (see test/helpers/processes.ts).
 */
export const BenchProcess = {
  start(command: string, args: string[], readyUrl: string, env: Readonly<Record<string, string>> = {}, ready: { anyAnswer?: boolean } = {}): Promise<ServiceProcess> {
    const [file, argv] = command === TSX ? [process.execPath, ["--import", "tsx", ...args]] : [command, args];
    return ServiceProcess.start({ command: file, args: argv, env, readyUrl, ...ready, readyTimeoutMs: 90_000, keepChars: OUTPUT_KEEP_CHARS });
  },
};
export type BenchProcess = ServiceProcess;

export const TSX = path.join(PROJECT_ROOT, "node_modules/.bin/tsx");

/** The devcluster's edge (src/devcluster/edge-main.ts) as its own process on `port`, its state in `home`. */
export function startBenchEdge(port: number, home: string): Promise<BenchProcess> {
  return BenchProcess.start(TSX, [path.join(PROJECT_ROOT, "src/devcluster/edge-main.ts")], `http://127.0.0.1:${port}/v2/`, {
    SHOAL_HOME: home,
    SHOAL_EDGE_PORT: String(port),
    WRANGLER_SEND_METRICS: "false",
    CLOUDFLARE_CF_FETCH_ENABLED: "false",
  });
}

export { freePorts } from "../../src/devcluster/ports.js";
