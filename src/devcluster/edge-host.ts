import path from "node:path";
import { mkdir } from "node:fs/promises";
import { Miniflare } from "miniflare";
import { unstable_getMiniflareWorkerOptions } from "wrangler";
import { PROJECT_ROOT, bundleWorker } from "./build-worker.js";
import { WATCHDOG_REQUEST_ID_PREFIX } from "./watchdog.js";
import { startFront } from "./front.js";

export interface EdgeHostOptions {
  /** Where R2, KV and Durable Object state persist. */
  stateDir: string;
  host?: string;
  port: number;
  /** Wrangler vars to override (SHOAL_CHUNK_MAX_BYTES, …). */
  vars?: Record<string, string>;
  log?: (record: Record<string, unknown>) => void;
}

export interface EdgeHost {
  url: string;
  /** The runtime's own plain-HTTP port, behind the front (benchmarks measure the front against it). */
  runtimeUrl: string;
  miniflare: Miniflare;
  close(): Promise<void>;
}

/** Runs the real Worker under miniflare with persisted R2/KV/DO, behind the devcluster's front (front.ts). */
export async function startEdgeHost(options: EdgeHostOptions): Promise<EdgeHost> {
  const log = options.log ?? (() => {});
  await mkdir(options.stateDir, { recursive: true });
  const { workerOptions } = unstable_getMiniflareWorkerOptions(path.join(PROJECT_ROOT, "wrangler.toml"));
  const script = await bundleWorker();
  const startRuntime = async (): Promise<Runtime> => {
    const miniflare = new Miniflare({
      ...(workerOptions as object),
      name: "shoal-edge",
      modules: [{ type: "ESModule", path: "worker.js", contents: script }],
      modulesRules: undefined,
      bindings: { ...(workerOptions.bindings ?? {}), ...(options.vars ?? {}) },
      r2Persist: path.join(options.stateDir, "r2"),
      kvPersist: path.join(options.stateDir, "kv"),
      durableObjectsPersist: path.join(options.stateDir, "do"),
      cachePersist: path.join(options.stateDir, "cache"),
      host: "127.0.0.1",
      port: 0,
      ...(process.env.SHOAL_EDGE_INSPECTOR_PORT ? { inspectorPort: Number(process.env.SHOAL_EDGE_INSPECTOR_PORT) } : {}),
      handleRuntimeStdio: (stdout: NodeJS.ReadableStream, stderr: NodeJS.ReadableStream) => {
        stdout.on("data", (d: Buffer) => logRuntime(log, "info", d));
        stderr.on("data", (d: Buffer) => logRuntime(log, "warn", d));
      },
    } as ConstructorParameters<typeof Miniflare>[0]);
    return { miniflare, origin: await miniflare.ready };
  };
  let runtime = await startRuntime();
  let closing = false;

  /**
   * workerd's main thread was seen spinning in V8's garbage-collection sweeper (gdb: every sample in
   * cppgc's Sweeper, under IoContext::runImpl), accepting no connection, for good. Nothing of the
   * Worker runs then, so nothing in it can notice: the front listens to the runtime itself. Every
   * answer it forwards, and every chunk of a body, counts as the runtime alive; when nothing came for
   * RUNTIME_SILENCE_MS and a `GET /v2/` goes unanswered too, it starts a new runtime on the same state
   * (requests under way to the old one fail, 502). A busy front (or a test's busy process) therefore
   * cannot mistake a slow answer for a dead runtime while bytes still flow.
   */
  let lastHeardAt = Date.now();
  const heard = () => {
    lastHeardAt = Date.now();
  };
  let checking = false;
  const check = async () => {
    if (checking || restarting || closing) return;
    checking = true;
    try {
      const res = await fetch(new URL("/v2/", runtime.origin), { signal: AbortSignal.timeout(RUNTIME_CHECK_TIMEOUT_MS), headers: { "X-Request-Id": `${WATCHDOG_REQUEST_ID_PREFIX}runtime-${Date.now()}` } });
      await res.body?.cancel();
      heard();
    } catch (error) {
      const silentMs = Date.now() - lastHeardAt;
      if (silentMs >= RUNTIME_SILENCE_MS) void restart(`nothing from the runtime for ${Math.round(silentMs / 1000)} s (last ask: ${(error as Error).name === "TimeoutError" ? `no answer within ${RUNTIME_CHECK_TIMEOUT_MS / 1000} s` : (error as Error).message})`);
    } finally {
      checking = false;
    }
  };
  const checker = setInterval(() => void check(), RUNTIME_CHECK_MS);
  checker.unref();
  let restarting: Promise<void> | undefined;
  const restart = (reason: string): Promise<void> =>
    (restarting ??= (async () => {
      if (closing) return;
      log({ level: "error", msg: "the edge runtime stopped answering: starting it again", reason });
      front.dropUpstreams();
      await runtime.miniflare.dispose().catch(() => undefined);
      if (closing) return;
      try {
        runtime = await startRuntime();
      } catch (error) {
        // The next check tries again (the silence goes on).
        log({ level: "error", msg: "the edge runtime did not start; trying again", error: String(error) });
        return;
      }
      heard();
      log({ level: "info", msg: "the edge runtime answers again", runtime: runtime.origin.origin });
    })().finally(() => (restarting = undefined)));

  const front = await startFront({
    host: options.host ?? "127.0.0.1",
    port: options.port,
    upstream: () => ({ host: runtime.origin.hostname, port: Number(runtime.origin.port) }),
    onUpstreamData: heard,
    log,
  });
  const url = front.url;
  return {
    url,
    get runtimeUrl() {
      return runtime.origin.origin;
    },
    get miniflare() {
      return runtime.miniflare;
    },
    /**
     * Stops taking requests, gives those under way CLOSE_GRACE_MS to finish, then cuts the rest,
     * and always ends with the runtime: a workerd outlives a front that exits without disposing it.
     */
    async close() {
      closing = true;
      clearInterval(checker);
      await restarting;
      await front.close(CLOSE_GRACE_MS);
      await runtime.miniflare.dispose().catch(() => undefined); // disposed already if its last restart failed
    },
  };
}

/** The miniflare runtime behind the front. */
interface Runtime {
  miniflare: Miniflare;
  /** Its plain-HTTP origin, `http://127.0.0.1:PORT`. */
  origin: URL;
}

/**
 * How often the front asks its runtime whether it answers, how long an answer may take, and how long
 * the runtime must have sent nothing at all before it counts as stuck: a restart fails the requests
 * under way, so only half a minute of silence counts.
 */
const RUNTIME_CHECK_MS = 5_000;
const RUNTIME_CHECK_TIMEOUT_MS = 10_000;
const RUNTIME_SILENCE_MS = 30_000;

/** How long requests under way may take to finish when the edge stops (a long upload is cut after it). */
const CLOSE_GRACE_MS = 2_000;

/** The Worker's output: its JSON log lines pass through as they are (tagged), anything else as text. */
function logRuntime(log: (record: Record<string, unknown>) => void, level: string, chunk: Buffer): void {
  for (const line of chunk.toString().split("\n")) {
    if (!line.trim()) continue;
    let record: unknown;
    try {
      record = line.trimStart().startsWith("{") ? JSON.parse(line) : undefined;
    } catch {
      record = undefined;
    }
    if (record && typeof record === "object" && !Array.isArray(record)) log({ level, ...(record as Record<string, unknown>), source: "workerd" });
    else log({ level, source: "workerd", msg: line.trimEnd() });
  }
}
