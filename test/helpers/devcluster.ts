import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

export { freePort, freePorts } from "../../src/devcluster/ports.js";
import { freePort } from "../../src/devcluster/ports.js";

export interface Devcluster {
  edgeUrl: string;
  /** Registry and admin URLs of agent one and agent two. */
  agents: { registry: string; registryHost: string; admin: string }[];
  /** host:port, as image references want it. */
  edgeHost: string;
  home: string;
  output: () => string;
  stop(): Promise<void>;
}

/** Runs `npm start`'s entry point as a real process tree on free ports. */
export async function startDevcluster(env: Record<string, string> = {}, home?: string): Promise<Devcluster> {
  const dir = home ?? (await mkdtemp(path.join(os.tmpdir(), "shoal-home-")));
  const port = await freePort();
  const agentPorts = [
    [await freePort(), await freePort(), await freePort()],
    [await freePort(), await freePort(), await freePort()],
  ];
  const agents = agentPorts.map(([registry, , admin]) => ({
    registry: `http://127.0.0.1:${registry}`,
    registryHost: `127.0.0.1:${registry}`,
    admin: `http://127.0.0.1:${admin}`,
  }));
  let output = "";
  // One process (`node --import tsx`), as the devcluster runs its own components (see processes.ts).
  const child: ChildProcess = spawn(process.execPath, ["--import", "tsx", "src/devcluster/main.ts"], {
    env: {
      ...process.env,
      SHOAL_HOME: dir,
      SHOAL_EDGE_PORT: String(port),
      SHOAL_AGENT_ONE_PORTS: agentPorts[0]!.join(","),
      SHOAL_AGENT_TWO_PORTS: agentPorts[1]!.join(","),
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
  const edgeUrl = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  // A devcluster that does not come up is stopped whole: its edge and agents would run on.
  const fail = (why: string): never => {
    try {
      process.kill(-child.pid!, "SIGKILL");
    } catch {
      // gone already
    }
    throw new Error(`devcluster ${why}: ${output}`);
  };
  for (;;) {
    if (child.exitCode !== null) fail("exited");
    try {
      const up = await Promise.all([fetch(`${edgeUrl}/v2/`), ...agents.map((a) => fetch(`${a.admin}/health`))]);
      // With SHOAL_PUSH_TOKENS the edge answers /v2/ with its login challenge: up all the same.
      if (up.every((r) => r.ok || r.status === 401)) break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) fail("did not start");
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    edgeUrl,
    agents,
    edgeHost: `127.0.0.1:${port}`,
    home: dir,
    output: () => output,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      process.kill(-child.pid!, "SIGTERM");
      const timer = setTimeout(() => process.kill(-child.pid!, "SIGKILL"), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
