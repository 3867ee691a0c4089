import { spawn, type ChildProcess } from "node:child_process";
import { processTree, treeRss } from "./rss.js";

export interface ServiceOptions {
  command: string;
  args: string[];
  env?: Record<string, string>;
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

  /** Resident memory of the process and its children (tsx runs node as a child), in bytes. */
  rss(): number {
    return treeRss(this.child.pid!);
  }

  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    const child = this.child;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once("exit", r));
    // tsx runs the program as its child and relays SIGTERM/SIGINT to it; SIGKILL cannot be
    // relayed, so a kill (a crash, in tests) goes to every process of the tree.
    const kill = (sig: NodeJS.Signals) => {
      const tree = sig === "SIGKILL" ? processTree(child.pid!).reverse() : [child.pid!];
      for (const pid of tree) {
        try {
          process.kill(pid, sig);
        } catch {
          // gone already
        }
      }
    };
    kill(signal);
    const timer = setTimeout(() => kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(timer);
  }
}
