/**
 * `npx tsx scripts/six-gib.ts [--size 6GiB] [--keep]`: proves a file larger than R2's 5 GiB
 * single-put limit goes up through the edge and comes down through an agent intact. Starts its
 * own devcluster (edge under miniflare, two agents) on free ports, writes a random file, `shoal put`s
 * it (chunked under the edge's request limit, assembled by multipart upload), `shoal get`s it
 * through agent one and then agent two (from agent one's pieces), and compares SHA-256s.
 * Needs about 4 × the size in free disk. CI does not run it (it takes minutes).
 */
import { execFile } from "node:child_process";
import { createHash, randomFillSync } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { parseSize } from "../src/agent-node/config.js";
import { startDevcluster } from "../test/helpers/devcluster.js";

const { values } = parseArgs({ options: { size: { type: "string", default: "6GiB" }, keep: { type: "boolean", default: false } } });
const size = parseSize(values.size!);
const dir = await mkdtemp(path.join(process.env.SHOAL_SCRIPT_DIR ?? os.tmpdir(), "shoal-six-gib-"));
const log = (message: string) => process.stdout.write(`[${new Date().toISOString().slice(11, 19)}] ${message}\n`);
const shoal = (args: string[]) =>
  new Promise<string>((resolve, reject) =>
    execFile(path.resolve("node_modules/.bin/tsx"), ["src/agent-node/main.ts", ...args], { maxBuffer: 1 << 24, env: { ...process.env, XDG_STATE_HOME: path.join(dir, "state") } }, (error, stdout, stderr) =>
      error ? reject(new Error(`shoal ${args[0]} failed: ${stderr}`)) : resolve(`${stdout}${stderr}`.trim()),
    ),
  );
const sha256 = async (file: string) => {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(file, { highWaterMark: 8 << 20 })) hash.update(chunk as Buffer);
  return hash.digest("hex");
};
const timed = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
  const started = Date.now();
  const result = await fn();
  const seconds = (Date.now() - started) / 1000;
  log(`${what}: ${seconds.toFixed(1)} s (${(size / 2 ** 20 / seconds).toFixed(0)} MiB/s)`);
  return result;
};

const source = path.join(dir, "big.bin");
await timed(`wrote ${values.size} of random bytes`, async () => {
  const out = createWriteStream(source);
  const block = Buffer.alloc(64 << 20);
  for (let written = 0; written < size; written += block.length) {
    randomFillSync(block);
    const chunk = block.subarray(0, Math.min(block.length, size - written));
    if (!out.write(chunk)) await new Promise<void>((r) => out.once("drain", () => r()));
  }
  await new Promise<void>((resolve, reject) => out.end((error?: Error | null) => (error ? reject(error) : resolve())));
});
const expected = await timed("hashed it", () => sha256(source));

const cluster = await startDevcluster({}, path.join(dir, "home"));
try {
  log(`devcluster up: edge ${cluster.edgeUrl}`);
  log(await timed("shoal put", () => shoal(["put", source, "--to", `${cluster.edgeHost}/big/file:v1`])));
  for (const [i, agent] of cluster.agents.entries()) {
    const out = path.join(dir, `out-${i}`);
    log(await timed(`shoal get through agent ${i + 1}`, () => shoal(["get", "big/file:v1", "--output", out, "--agent", agent.registry, "--admin", agent.admin])));
    const actual = await sha256(path.join(out, "big.bin"));
    if (actual !== expected) throw new Error(`agent ${i + 1}: sha256 ${actual}, expected ${expected}`);
    log(`agent ${i + 1}: intact (sha256 ${actual.slice(0, 16)}…)`);
    if (!values.keep) await rm(out, { recursive: true, force: true });
  }
  log(`OK: ${values.size} up and down intact`);
} finally {
  await cluster.stop();
  if (!values.keep) await rm(dir, { recursive: true, force: true });
}
