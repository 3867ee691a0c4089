import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { processTree, treeRss } from "./rss.js";

export interface ServiceOptions {
  command: string;
  args: string[];
  env?: Readonly<Record<string, string>>;
  /** Polled until it answers 2xx (or, with `anyAnswer`, any HTTP status): the service is up. */
  readyUrl: string;
  anyAnswer?: boolean;
  readyTimeoutMs?: number;
  /** How much of the most recent output to keep in memory. */
  keepChars?: number;
  /** Every chunk of output, as it comes (e.g. to a log file). */
  onOutput?: (chunk: Buffer) => void;
}

/**
 * A server started as a process of its own for tests and benchmarks: spawned, waited for until
 * its ready URL answers, stopped (SIGTERM, SIGKILL after 10 s); its recent output kept for errors.
 */
export class ServiceProcess {
  output = "";

  private constructor(
    readonly child: ChildProcess,
    keepChars: number,
    onOutput: ((chunk: Buffer) => void) | undefined,
  ) {
    const append = (chunk: Buffer) => {
      onOutput?.(chunk);
      this.output += chunk.toString();
      if (this.output.length > 2 * keepChars) this.output = this.output.slice(-keepChars);
    };
    child.stdout!.on("data", append);
    child.stderr!.on("data", append);
  }

  static async start(options: ServiceOptions): Promise<ServiceProcess> {
    const child = spawn(options.command, options.args, { env: { ...process.env, ...options.env }, stdio: ["ignore", "pipe", "pipe"] });
    const service = new ServiceProcess(child, options.keepChars ?? 1 << 20, options.onOutput);
    const deadline = Date.now() + (options.readyTimeoutMs ?? 60_000);
    for (;;) {
      if (child.exitCode !== null) throw new Error(`${options.command} exited: ${service.output.slice(-2000)}`);
      try {
        const res = await fetch(options.readyUrl);
        if (res.ok || options.anyAnswer) return service;
      } catch {
        // not yet
      }
      if (Date.now() > deadline) throw new Error(`${options.command} did not start: ${service.output.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 150));
    }
  }

  /** Resident memory of the process and its children (an edge's workerd), in bytes. */
  rss(): number {
    return treeRss(this.child.pid!);
  }

  /**
   * Stops the process and every process it started (an edge's workerd): `signal` to the process,
   * SIGKILL to the whole tree after 10 s, and whatever of the tree outlives the process (a child it
   * did not stop on its way out) is killed too, so nothing holds its ports or state afterwards.
   */
  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    const child = this.child;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once("exit", r));
    const tree = processTree(child.pid!);
    const kill = (pids: number[], sig: NodeJS.Signals) => {
      for (const pid of pids) {
        try {
          process.kill(pid, sig);
        } catch {
          // gone already
        }
      }
    };
    kill(signal === "SIGKILL" ? [...tree].reverse() : [child.pid!], signal);
    const timer = setTimeout(() => kill([...processTree(child.pid!), ...tree].reverse(), "SIGKILL"), 10_000);
    await exited;
    clearTimeout(timer);
    const left = tree.filter((pid) => pid !== child.pid && alive(pid));
    kill(left, "SIGKILL");
    while (left.some(alive)) await new Promise((r) => setTimeout(r, 20));
  }
}

/** A process that has not exited (a zombie, exited but not yet reaped, counts as gone). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}
