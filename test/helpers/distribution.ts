import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { ServiceProcess } from "./service-process.js";

/** Debian's docker-registry (distribution 2.8) on a port, storing under `dir` (restartable on the same dir). */
export async function startDistribution(dir: string, port: number): Promise<ServiceProcess> {
  await mkdir(dir, { recursive: true });
  const config = path.join(dir, "config.yml");
  await writeFile(
    config,
    ["version: 0.1", "log: { level: error }", `storage: { filesystem: { rootdirectory: ${path.join(dir, "data")} }, delete: { enabled: true } }`, `http: { addr: "127.0.0.1:${port}" }`, ""].join("\n"),
  );
  return ServiceProcess.start({ command: "docker-registry", args: ["serve", config], readyUrl: `http://127.0.0.1:${port}/v2/` });
}
