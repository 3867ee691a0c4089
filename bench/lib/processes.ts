import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { treeRss } from "../../test/helpers/rss.js";
import { PROJECT_ROOT } from "../../src/devcluster/build-worker.js";

/** How much of a process's most recent output is kept (for errors and debug logs). */
const OUTPUT_KEEP_CHARS = 4 << 20;

/** A server process for a benchmark: started, waited for, stopped; its output kept for errors. */
export class BenchProcess {
  output = "";
  private constructor(readonly child: ChildProcess) {
    const append = (d: Buffer) => {
      this.output = (this.output + d.toString()).slice(-OUTPUT_KEEP_CHARS);
    };
    child.stdout?.on("data", append);
    child.stderr?.on("data", append);
  }

  static async start(command: string, args: string[], readyUrl: string, env: Record<string, string> = {}): Promise<BenchProcess> {
    const proc = new BenchProcess(spawn(command, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] }));
    const deadline = Date.now() + 90_000;
    for (;;) {
      if (proc.child.exitCode !== null) throw new Error(`${command} exited: ${proc.output.slice(-2000)}`);
      try {
        if ((await fetch(readyUrl)).ok) return proc;
      } catch {
        // not yet
      }
      if (Date.now() > deadline) throw new Error(`${command} did not start: ${proc.output.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** Resident memory of the process and its children (tsx runs node as a child), in bytes. */
  rss(): number {
    return treeRss(this.child.pid!);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((r) => this.child.once("exit", r));
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(timer);
  }
}

export const TSX = path.join(PROJECT_ROOT, "node_modules/.bin/tsx");

export { freePorts } from "../../src/devcluster/ports.js";
