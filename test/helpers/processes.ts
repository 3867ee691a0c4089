import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { afterEach } from "vitest";
import os from "node:os";
import path from "node:path";
import { freePort } from "./devcluster.js";

const TSX = path.resolve("node_modules/.bin/tsx");

/** Processes started by the current test file, whose logs are printed when a test fails. */
const live = new Set<Proc>();
const LOG_TAIL_CHARS = 6_000;
/** How much of a process's output is kept in memory (its most recent part). */
const OUTPUT_KEEP_CHARS = 1 << 20;

afterEach((context) => {
  if (context.task.result?.state !== "fail") return;
  for (const proc of live) {
    process.stderr.write(`\n----- last output of ${proc.args.join(" ")} -----\n${proc.output.slice(-LOG_TAIL_CHARS)}\n`);
  }
});

/** A component started as its own process (edge or agent), stoppable and restartable. */
export class Proc {
  private child: ChildProcess | undefined;
  output = "";

  constructor(
    readonly args: string[],
    private readonly env: Record<string, string>,
    private readonly readyUrl: string,
  ) {
    live.add(this);
  }

  async start(): Promise<this> {
    this.child = spawn(TSX, this.args, { env: { ...process.env, ...this.env }, stdio: ["ignore", "pipe", "pipe"] });
    // SHOAL_TEST_LOG_DIR keeps each process's whole output in a file, for debugging a run.
    const logDir = process.env.SHOAL_TEST_LOG_DIR;
    const logFile = logDir ? createWriteStream(path.join(logDir, `${path.basename(this.args[0]!, ".ts")}-${this.child.pid}.log`)) : undefined;
    const append = (d: Buffer) => {
      logFile?.write(d);
      this.output += d.toString();
      if (this.output.length > 2 * OUTPUT_KEEP_CHARS) this.output = this.output.slice(-OUTPUT_KEEP_CHARS);
    };
    this.child.stdout!.on("data", append);
    this.child.stderr!.on("data", append);
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (this.child.exitCode !== null) throw new Error(`process exited: ${this.output.slice(-2000)}`);
      try {
        if ((await fetch(this.readyUrl)).ok) return this;
      } catch {
        // not yet
      }
      if (Date.now() > deadline) throw new Error(`process did not start: ${this.output.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 150));
    }
  }

  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once("exit", r));
    child.kill(signal);
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(timer);
  }
}

export interface EdgeProc extends Proc {
  url: string;
  host: string;
}

export async function startEdgeProcess(home: string, vars: Record<string, string> = {}, port?: number): Promise<{ proc: Proc; url: string; host: string; port: number }> {
  const p = port ?? (await freePort());
  const url = `http://127.0.0.1:${p}`;
  const proc = await new Proc(["src/devcluster/edge-main.ts"], { SHOAL_HOME: home, SHOAL_EDGE_PORT: String(p), ...vars }, `${url}/v2/`).start();
  return { proc, url, host: `127.0.0.1:${p}`, port: p };
}

export interface AgentHandle {
  proc: Proc;
  registry: string;
  registryHost: string;
  admin: string;
  storeDir: string;
  metric(name: string, labels?: string): Promise<number>;
}

export async function startAgentProcess(edgeUrl: string, options: { storeDir?: string; extra?: string[]; ports?: [number, number, number] } = {}): Promise<AgentHandle> {
  const storeDir = options.storeDir ?? (await mkdtemp(path.join(os.tmpdir(), "shoal-agent-")));
  const [registryPort, peerPort, adminPort] = options.ports ?? [await freePort(), await freePort(), await freePort()];
  const admin = `http://127.0.0.1:${adminPort}`;
  const proc = await new Proc(
    [
      "src/agent-node/main.ts",
      "agent",
      `--edge=${edgeUrl}`,
      `--store-dir=${storeDir}`,
      `--agent-registry-port=${registryPort}`,
      `--peer-port=${peerPort}`,
      `--agent-server-port=${adminPort}`,
      ...(options.extra ?? []),
    ],
    {},
    `${admin}/health`,
  ).start();
  return {
    proc,
    registry: `http://127.0.0.1:${registryPort}`,
    registryHost: `127.0.0.1:${registryPort}`,
    admin,
    storeDir,
    async metric(name: string, labels = "") {
      const text = await (await fetch(`${admin}/metrics`)).text();
      const line = text.split("\n").find((l) => l.startsWith(`${name}${labels} `) || (labels === "" && l.startsWith(`${name} `)));
      return line ? Number(line.split(" ").pop()) : 0;
    },
  };
}
