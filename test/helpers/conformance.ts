import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { PROJECT_ROOT } from "../../src/devcluster/build-worker.js";

const exec = promisify(execFile);

/**
 * The official OCI distribution-spec conformance suite (v1.1.1), built offline from Debian's Go by
 * the harness in the shared tools beside the repository (CI clones the repository next to a copy
 * of shared/; SHOAL_SHARED_DIR points elsewhere).
 */
export const HARNESS = path.join(process.env.SHOAL_SHARED_DIR ?? path.resolve(PROJECT_ROOT, "../shared"), "tools/oci-conformance");
/** Specs the suite runs with push, pull, discovery and management enabled (5 more skip by its own conditions). */
export const SPECS = 74;

/**
 * Builds the suite once (about 30 s, 3 min on a busy machine), then reuses the binary while its
 * inputs are unchanged. Under a lock: the test files that run it build into the same directory,
 * and on a fresh machine two builds at once collided ("cp: cannot create regular file …: File exists").
 */
export async function buildConformanceSuite(): Promise<void> {
  if (!existsSync(path.join(HARNESS, "run.sh"))) throw new Error(`conformance harness not found at ${HARNESS} (set SHOAL_SHARED_DIR)`);
  await exec("flock", [path.join(os.tmpdir(), "shoal-oci-conformance.lock"), "bash", path.join(HARNESS, "build.sh")], { maxBuffer: 64 * 1024 * 1024 });
}

/**
 * Runs the suite against `host`, its reports in `reports`: its output, and its counts with the
 * failing specs and the suite's reasons (so a regression says what broke), or null when it printed no summary.
 */
export async function runConformanceSuite(host: string, reports: string, env: Record<string, string> = {}): Promise<{ stdout: string; result: { passed: number; failed: number; failures: string } | null }> {
  const { stdout } = await exec("bash", [path.join(HARNESS, "run.sh"), host, reports], { maxBuffer: 64 * 1024 * 1024, env: { ...process.env, ...env } });
  const summary = /conformance: (\d+) passed, (\d+) failed, (\d+) skipped/.exec(stdout);
  if (!summary) return { stdout, result: null };
  const [passed, failed] = [Number(summary[1]), Number(summary[2])];
  const failures = failed > 0 ? await readFile(path.join(reports, "failures.txt"), "utf8") : "";
  return { stdout, result: { passed, failed, failures } };
}
