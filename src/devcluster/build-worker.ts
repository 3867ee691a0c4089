import { build } from "esbuild";
import { fileURLToPath } from "node:url";
import path from "node:path";

export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** Bundles the Worker the way wrangler does (ES module, workerd conditions) for miniflare. */
export async function bundleWorker(): Promise<string> {
  const result = await build({
    entryPoints: [path.join(PROJECT_ROOT, "src/worker/index.ts")],
    bundle: true,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    conditions: ["workerd", "worker", "browser"],
    mainFields: ["module", "main"],
    external: ["cloudflare:*"],
    write: false,
    sourcemap: "inline",
    logLevel: "silent",
  });
  return result.outputFiles[0]!.text;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const code = await bundleWorker();
  process.stdout.write(`bundled worker: ${code.length} bytes\n`);
}
