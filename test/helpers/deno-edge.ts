import path from "node:path";
import { freePort } from "../../src/devcluster/ports.js";
import { ServiceProcess } from "./service-process.js";

const DENO = path.resolve("node_modules/.bin/deno");

/** The self-hosted edge (`npm run edge:deno`) as its own process, state under `home`. */
export async function startDenoEdge(home: string, vars: Record<string, string> = {}, port?: number): Promise<{ url: string; host: string; port: number; service: ServiceProcess }> {
  const p = port ?? (await freePort());
  const url = `http://127.0.0.1:${p}`;
  const service = await ServiceProcess.start({
    command: DENO,
    args: ["run", "--allow-net", "--allow-read", "--allow-write", "--allow-env", "--allow-sys", "src/edge-deno/main.ts", "--port", String(p)],
    env: { SHOAL_HOME: home, NO_COLOR: "1", SHOAL_TRACKER_ALLOW_LOOPBACK: "true", ...vars },
    // Up once it answers at all: a misconfigured edge answers every request with an error.
    readyUrl: `${url}/`,
    anyAnswer: true,
  });
  return { url, host: `127.0.0.1:${p}`, port: p, service };
}
