import { build } from "esbuild";
import { execFile } from "node:child_process";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { PROJECT_ROOT } from "./build-worker.js";
import { AGENT_ENV_ASSIGNMENTS, AGENT_NODE_FLAGS } from "../agent-node/node-flags.js";

/**
 * Bundles the agent and CLI (`shoal`) into one self-contained ES module for hosts: plain
 * `node dist/shoal.mjs agent …`, with every dependency inside it, so it needs no node_modules and no
 * TypeScript loader at run time (about 30 MiB less resident memory than the sources through tsx).
 */
export async function bundleAgent(outfile = path.join(PROJECT_ROOT, "dist/shoal.mjs")): Promise<string> {
  await build({
    entryPoints: [path.join(PROJECT_ROOT, "src/agent-node/main.ts")],
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    outfile,
    sourcemap: "linked",
    // CommonJS dependencies (pino, prom-client, …) call require() for Node's built-ins; an ES module has none.
    // `env -S` splits the line, so the agent's environment and V8 flags (node-flags.ts) come with a plain `shoal …`.
    banner: { js: `#!/usr/bin/env -S ${AGENT_ENV_ASSIGNMENTS.join(" ")} node ${AGENT_NODE_FLAGS.join(" ")}\nimport { createRequire as __shoalCreateRequire } from "node:module"; const require = __shoalCreateRequire(import.meta.url);` },
    logLevel: "warning",
  });
  return outfile;
}

/**
 * The npm package a host installs (`npm install -g dist/shoal-<version>.tgz`): the bundle and a
 * package.json with no dependencies, so installing it needs no registry.
 */
export async function packAgent(outDir = path.join(PROJECT_ROOT, "dist")): Promise<{ bundle: string; tarball: string }> {
  const root = JSON.parse(await readFile(path.join(PROJECT_ROOT, "package.json"), "utf8")) as Record<string, unknown>;
  const dir = path.join(outDir, "package");
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const bundle = await bundleAgent(path.join(outDir, "shoal.mjs"));
  await bundleAgent(path.join(dir, "shoal.mjs"));
  const manifest = {
    name: root.name,
    version: root.version,
    description: root.description,
    license: root.license,
    type: "module",
    engines: root.engines,
    bin: { shoal: "shoal.mjs" },
    files: ["shoal.mjs"],
  };
  await writeFile(path.join(dir, "package.json"), `${JSON.stringify(manifest, null, 2)}\n`);
  const { stdout } = await promisify(execFile)("npm", ["pack", dir, "--pack-destination", outDir, "--silent"], { cwd: outDir });
  return { bundle, tarball: path.join(outDir, stdout.trim().split("\n").pop()!) };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { bundle, tarball } = await packAgent();
  process.stdout.write(`bundled the agent: ${bundle}\npackage: ${tarball} (npm install -g ${path.relative(process.cwd(), tarball)})\n`);
}
