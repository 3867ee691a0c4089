import path from "node:path";
import { PROJECT_ROOT } from "../../src/devcluster/build-worker.js";
import { ServiceProcess } from "../../test/helpers/service-process.js";

/** How much of a process's most recent output is kept (for errors and debug logs). */
const OUTPUT_KEEP_CHARS = 4 << 20;

/** A server process for a benchmark (the tests' ServiceProcess, with a longer start-up allowance). */
export const BenchProcess = {
  start(command: string, args: string[], readyUrl: string, env: Record<string, string> = {}): Promise<ServiceProcess> {
    return ServiceProcess.start({ command, args, env, readyUrl, readyTimeoutMs: 90_000, keepChars: OUTPUT_KEEP_CHARS });
  },
};
export type BenchProcess = ServiceProcess;

export const TSX = path.join(PROJECT_ROOT, "node_modules/.bin/tsx");

export { freePorts } from "../../src/devcluster/ports.js";
