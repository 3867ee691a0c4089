import { createWriteStream } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { afterEach } from "vitest";
import os from "node:os";
import path from "node:path";
import { freePort } from "./devcluster.js";
import { ServiceProcess } from "./service-process.js";

/**
 * Programs run as one process, `node --import tsx`, not under the `tsx` command: that wrapper relays
 * SIGTERM to its child only if the child acknowledges it within 30 ms and otherwise kills the child
 * with SIGKILL, or exits while the child lives on. A busy machine misses that window, and an edge
 * killed that way leaves its workerd holding the Durable Objects' SQLite files (the next edge on the
 * same state then hangs on every object), or keeps serving after the test believes it stopped.
 */
const NODE_WITH_TSX = [process.execPath, "--import", "tsx"] as const;

/** Processes started by the current test file, whose logs are printed when a test fails. */
const live = new Set<Proc>();
const LOG_TAIL_CHARS = 6_000;

afterEach((context) => {
  if (context.task.result?.state !== "fail") return;
  for (const proc of live) {
    process.stderr.write(`\n----- last output of ${proc.args.join(" ")} -----\n${proc.output.slice(-LOG_TAIL_CHARS)}\n`);
  }
});

/** A component started as its own process (edge or agent), stoppable and restartable. */
export class Proc {
  private service: ServiceProcess | undefined;
  private starts = 0;

  constructor(
    readonly args: string[],
    private readonly env: Record<string, string>,
    private readonly readyUrl: string,
  ) {
    live.add(this);
  }

  /** The recent output of the process as last started. */
  get output(): string {
    return this.service?.output ?? "";
  }

  async start(): Promise<this> {
    // SHOAL_TEST_LOG_DIR keeps each process's whole output in a file, for debugging a run.
    const logDir = process.env.SHOAL_TEST_LOG_DIR;
    const name = `${path.basename(this.args[0]!, ".ts")}-${process.pid}-${++this.starts}-${Date.now()}.log`;
    const logFile = logDir ? createWriteStream(path.join(logDir, name)) : undefined;
    this.service = await ServiceProcess.start({
      command: NODE_WITH_TSX[0],
      args: [...NODE_WITH_TSX.slice(1), ...this.args],
      env: this.env,
      readyUrl: this.readyUrl,
      onOutput: logFile ? (chunk) => logFile.write(chunk) : undefined,
    });
    return this;
  }

  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    await this.service?.stop(signal);
  }

  /** The program's own process, for /proc inspection. */
  programPid(): number {
    return this.service!.child.pid!;
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
