import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import path from "node:path";

/** A real containerd with its own config, state and socket under `dir` (needs root, as CI runs). */
export async function startContainerd(dir: string): Promise<{ socket: string; stop(): Promise<void> }> {
  const socket = path.join(dir, "containerd.sock");
  const config = path.join(dir, "config.toml");
  await writeFile(
    config,
    [
      "version = 2",
      `root = "${path.join(dir, "root")}"`,
      `state = "${path.join(dir, "state")}"`,
      `disabled_plugins = ["io.containerd.grpc.v1.cri"]`,
      "[grpc]",
      `  address = "${socket}"`,
      "[ttrpc]",
      `  address = "${socket}.ttrpc"`,
      "",
    ].join("\n"),
  );
  let output = "";
  const child = spawn("containerd", ["--config", config], { stdio: ["ignore", "pipe", "pipe"] });
  child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
  const deadline = Date.now() + 20_000;
  while (!existsSync(socket)) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`containerd did not start: ${output.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    socket,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await exited;
    },
  };
}
