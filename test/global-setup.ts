import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

/**
 * Every temporary file of a test run (devcluster homes, agent stores, image layouts, and what the
 * clients the tests start write) goes under one directory, removed when the run ends: test files
 * that stop early, and processes killed on purpose, leave nothing behind in the system's /tmp.
 * Its name is short: podman refuses a --runroot longer than 50 characters.
 */
export async function setup(): Promise<() => Promise<void>> {
  const root = await mkdtemp(path.join(os.tmpdir(), "shoal-"));
  process.env.TMPDIR = root; // os.tmpdir() in the test workers and every process they start
  return async () => {
    // A mount a client left behind (podman's overlay) must not turn a green run red: say so.
    await rm(root, { recursive: true, force: true, maxRetries: 3 }).catch((error: Error) => console.warn(`could not remove ${root}: ${error.message}`));
  };
}
