import { spawn, type ChildProcess } from "node:child_process";
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";

const exec = promisify(execFile);
/** Debian's docker.io client, the same release as its dockerd. */
const DOCKER = "/usr/bin/docker";

export interface Dockerd {
  dir: string;
  /** Runs the docker CLI against this engine, with its own config dir (logins stay in the test). */
  docker(args: string[], options?: { input?: string }): Promise<{ stdout: string; stderr: string }>;
  stop(): Promise<void>;
}

/**
 * A real Docker engine of the test's own (root, no bridge networking: enough to push and pull),
 * started as TOOLCHAIN.md describes. Registries on 127.0.0.0/8 are plain HTTP to it by default.
 */
export async function startDockerd(): Promise<Dockerd> {
  // Short: the exec root holds unix sockets, whose paths are capped at 108 bytes.
  const dir = await mkdtemp(path.join(os.tmpdir(), "sd-"));
  const sock = `unix://${dir}/sock`;
  let output = "";
  const child: ChildProcess = spawn(
    "dockerd",
    [`--data-root=${dir}/root`, `--exec-root=${dir}/exec`, `--pidfile=${dir}/pid`, `-H`, sock, "--iptables=false", "--ip6tables=false", "--bridge=none", "--storage-driver=vfs"],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  child.stdout!.on("data", (d: Buffer) => (output = (output + d.toString()).slice(-20_000)));
  child.stderr!.on("data", (d: Buffer) => (output = (output + d.toString()).slice(-20_000)));
  const env = { ...process.env, DOCKER_HOST: sock, DOCKER_CONFIG: path.join(dir, "config") };
  const docker = async (args: string[], options: { input?: string } = {}) => {
    const run = exec(DOCKER, args, { env, maxBuffer: 1 << 26 });
    if (options.input !== undefined) {
      run.child.stdin!.end(options.input);
    }
    return run;
  };
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`dockerd exited: ${output}`);
    try {
      await docker(["version"]);
      break;
    } catch {
      if (Date.now() > deadline) throw new Error(`dockerd did not start: ${output}`);
      await new Promise((r) => setTimeout(r, 300));
    }
  }
  return {
    dir,
    docker,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
        await exited;
        clearTimeout(timer);
      }
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    },
  };
}
