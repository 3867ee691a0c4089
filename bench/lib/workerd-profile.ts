import { execFileSync, spawnSync } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { WebSocket } from "undici";

/**
 * `tsx bench/lib/workerd-profile.ts HOST:PORT DIR -- COMMAND …`: a CPU profile of every isolate of a
 * devcluster edge's workerd (the Worker and miniflare's storage simulators are isolates of their
 * own) while COMMAND runs. Start the edge with `SHOAL_EDGE_INSPECTOR_PORT=PORT`; each isolate's
 * profile goes to DIR/<isolate>.cpuprofile (`tsx bench/lib/cpu-profile.ts DIR` sums them), and the
 * workerd process's CPU time over the command is printed beside each isolate's sampled time.
 * Isolates share workerd's thread, so their sampled times may overlap: a native operation that
 * runs while an isolate waits is sampled in the JavaScript frame that awaits it.
 */
interface Target {
  id: string;
  webSocketDebuggerUrl: string;
}

class Inspector {
  private next = 0;
  private readonly pending = new Map<number, (result: unknown) => void>();

  private constructor(private readonly ws: WebSocket) {
    ws.onmessage = (event) => {
      const message = JSON.parse(String(event.data)) as { id?: number; result?: unknown; error?: unknown };
      if (message.id !== undefined) this.pending.get(message.id)?.(message.result ?? message.error);
      if (message.id !== undefined) this.pending.delete(message.id);
    };
  }

  static async connect(url: string): Promise<Inspector> {
    const ws = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new Error(`cannot reach ${url}`));
    });
    return new Inspector(ws);
  }

  send<T>(method: string, params: object = {}): Promise<T> {
    const id = ++this.next;
    return new Promise((resolve) => {
      this.pending.set(id, resolve as (result: unknown) => void);
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }

  close(): void {
    this.ws.close();
  }
}

/** user + system CPU seconds of every workerd process on the machine, by pid. */
async function workerdCpu(): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const pids = spawnSync("pgrep", ["-x", "workerd"], { encoding: "utf8" }).stdout.trim().split("\n").filter(Boolean);
  for (const pid of pids) {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (fields.length > 13) out.set(pid, (Number(fields[11]) + Number(fields[12])) / 100);
  }
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [address, dir, dashes, ...command] = process.argv.slice(2);
  if (!address || !dir || dashes !== "--" || command.length === 0) throw new Error("usage: tsx bench/lib/workerd-profile.ts HOST:PORT DIR -- COMMAND …");
  await mkdir(dir, { recursive: true });
  const targets = (await (await fetch(`http://${address}/json/list`)).json()) as Target[];
  const inspectors = await Promise.all(targets.map(async (t) => ({ id: t.id, inspector: await Inspector.connect(t.webSocketDebuggerUrl) })));
  for (const { inspector } of inspectors) {
    await inspector.send("Profiler.enable");
    await inspector.send("Profiler.setSamplingInterval", { interval: 500 });
    await inspector.send("Profiler.start");
  }
  const before = await workerdCpu();
  const started = performance.now();
  execFileSync(command[0]!, command.slice(1), { stdio: "inherit" });
  const wallMs = performance.now() - started;
  const after = await workerdCpu();
  let cpu = 0;
  for (const [pid, seconds] of after) cpu += seconds - (before.get(pid) ?? seconds);
  console.log(`\ncommand: ${(wallMs / 1000).toFixed(2)} s; workerd CPU over it: ${cpu.toFixed(2)} s`);
  for (const { id, inspector } of inspectors) {
    const { profile } = await inspector.send<{ profile: { nodes: { id: number; callFrame: { functionName: string } }[]; samples: number[]; timeDeltas: number[] } }>("Profiler.stop");
    inspector.close();
    const name = new Map(profile.nodes.map((n) => [n.id, n.callFrame.functionName]));
    let busyMs = 0;
    profile.samples.forEach((sample, i) => {
      if (!["(idle)", "(program)"].includes(name.get(sample) ?? "")) busyMs += (profile.timeDeltas[i + 1] ?? 0) / 1000;
    });
    await writeFile(path.join(dir, `${id.replace(/[^A-Za-z0-9._-]/g, "_")}.cpuprofile`), JSON.stringify(profile));
    if (busyMs >= 5) console.log(`${busyMs.toFixed(0).padStart(7)} ms sampled  ${id}`);
  }
  process.exit(0);
}
