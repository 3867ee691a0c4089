import { randomBytes } from "node:crypto";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { Miniflare } from "miniflare";
import { bundleWorkerModule } from "../../src/devcluster/build-worker.js";
import { BenchProcess, TSX } from "./processes.js";

/**
 * cloudflare/serverless-registry (another registry on Workers + R2) under this project's miniflare,
 * as a baseline for `npm run bench -- edge --serverless-registry DIR`. DIR is a checkout of it with
 * its dependencies installed (`npm install` there); nothing of it is part of Shoal. It is bundled as
 * wrangler would (`index.ts`, ES module, workerd conditions) and run with the compatibility settings
 * of its `wrangler.example.toml`, its R2 bucket persisted under `state`, and a push user of its
 * username/password mode (it refuses to start without one).
 */
export interface ServerlessRegistry {
  proc: BenchProcess;
  base: string;
  /** `Authorization` header value for every request. */
  authorization: string;
}

const COMPATIBILITY_DATE = "2024-09-09";
const COMPATIBILITY_FLAGS = ["nodejs_compat"];

export async function startServerlessRegistry(dir: string, port: number, state: string): Promise<ServerlessRegistry> {
  const user = "bench";
  const password = randomBytes(12).toString("hex");
  const proc = await BenchProcess.start(TSX, [path.join(import.meta.dirname, "serverless-registry.ts"), dir, String(port), state], `http://127.0.0.1:${port}/v2/`, { SR_USER: user, SR_PASSWORD: password }, { anyAnswer: true });
  return { proc, base: `http://127.0.0.1:${port}`, authorization: `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}` };
}

async function serve(dir: string, port: number, state: string): Promise<void> {
  const script = await bundleWorkerModule(path.join(dir, "index.ts"), { external: ["node:*", "cloudflare:*"] });
  await mkdir(state, { recursive: true });
  const miniflare = new Miniflare({
    modules: [{ type: "ESModule", path: "worker.js", contents: script }],
    compatibilityDate: COMPATIBILITY_DATE,
    compatibilityFlags: COMPATIBILITY_FLAGS,
    r2Buckets: ["REGISTRY"],
    r2Persist: path.join(state, "r2"),
    bindings: { USERNAME: process.env.SR_USER ?? "", PASSWORD: process.env.SR_PASSWORD ?? "" },
    host: "127.0.0.1",
    port,
  });
  process.stderr.write(`serverless-registry on ${(await miniflare.ready).origin}\n`);
  const stop = () => void miniflare.dispose().finally(() => process.exit(0));
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [dir, port, state] = process.argv.slice(2);
  if (!dir || !port || !state) {
    process.stderr.write("usage: serverless-registry.ts DIR PORT STATE_DIR\n");
    process.exit(2);
  }
  await serve(path.resolve(dir), Number(port), path.resolve(state));
}
