import { build } from "esbuild";
import { fileURLToPath } from "node:url";
import path from "node:path";

export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** Bundles the Worker the way wrangler does (ES module, workerd conditions) for miniflare. */
export function bundleWorker(): Promise<string> {
  return bundleWorkerModule(path.join(PROJECT_ROOT, "src/worker/index.ts"), { sourcemap: true });
}

/** Bundles a Worker's entry module as wrangler does; `external` names what the runtime provides. */
export async function bundleWorkerModule(entry: string, options: { sourcemap?: boolean; external?: string[] } = {}): Promise<string> {
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    conditions: ["workerd", "worker", "browser"],
    mainFields: ["module", "main"],
    external: options.external ?? ["cloudflare:*"],
    write: false,
    sourcemap: options.sourcemap ? "inline" : false,
    logLevel: "silent",
  });
  return result.outputFiles[0]!.text;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const code = await bundleWorker();
  process.stdout.write(`bundled worker: ${code.length} bytes\n`);
}
