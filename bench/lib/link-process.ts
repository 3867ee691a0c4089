import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { createInterface } from "node:readline";
import { PROJECT_ROOT } from "../../src/devcluster/build-worker.js";
import { TSX } from "./processes.js";

/** A LimitedLink run as its own process (bench/link-main.ts), driven over its standard input. */
export class LinkProcess {
  private readonly lines: AsyncIterator<string>;

  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
    lines: AsyncIterator<string>,
  ) {
    this.lines = lines;
  }

  static async start(targetPort: number, rateBytesPerSecond: number): Promise<LinkProcess> {
    const child = spawn(TSX, [path.join(PROJECT_ROOT, "bench/link-main.ts"), String(targetPort), String(Math.floor(rateBytesPerSecond))], {
      stdio: ["pipe", "pipe", "inherit"],
    });
    const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
    const first = await lines.next();
    if (first.done) throw new Error("the link process exited before it listened");
    return new LinkProcess(child, (JSON.parse(first.value) as { port: number }).port, lines);
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Bytes through the link both ways since the last reset; `reset` zeroes them after reading. */
  async bytes(reset = false): Promise<number> {
    this.child.stdin!.write(reset ? "reset\n" : "stats\n");
    const line = await this.lines.next();
    const { down, up } = JSON.parse(line.value as string) as { down: number; up: number };
    return down + up;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.child.once("exit", resolve));
    this.child.stdin!.end();
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 5_000);
    await exited;
    clearTimeout(timer);
  }
}
