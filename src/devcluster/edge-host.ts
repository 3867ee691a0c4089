import http from "node:http";
import path from "node:path";
import { mkdir } from "node:fs/promises";
import { Miniflare } from "miniflare";
import { Client, Pool, type Dispatcher } from "undici";
import { unstable_getMiniflareWorkerOptions } from "wrangler";
import { PROJECT_ROOT, bundleWorker } from "./build-worker.js";
import { WATCHDOG_REQUEST_ID_PREFIX } from "./watchdog.js";

// `expect` too: Node's server answers `Expect: 100-continue` itself (curl sends it for bodies over
// 1 MiB), and undici refuses to send a request carrying it.
const HOP_BY_HOP = new Set(["connection", "keep-alive", "transfer-encoding", "upgrade", "proxy-connection", "te", "trailer", "host", "expect"]);

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

/**
 * Runs the real Worker under miniflare with persisted R2/KV/DO, behind a Node HTTP front.
 * Why a front: workerd stalls a TLS ClientHello on its plain-HTTP port, and skopeo/podman try
 * HTTPS first, waiting Go's 10 s handshake timeout on every call. Node answers it at once.
 */
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
    const origin = (await miniflare.ready).origin;
    // undici, not http.request: when the Worker answers before reading a body (413 on an oversized
    // chunk) workerd closes the socket, and undici still delivers the response it got.
    return { miniflare, origin, pool: new Pool(origin, { connections: 256, bodyTimeout: 0, headersTimeout: 0 }) };
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
      const res = await fetch(`${runtime.origin}/v2/`, { signal: AbortSignal.timeout(RUNTIME_CHECK_TIMEOUT_MS), headers: { "X-Request-Id": `${WATCHDOG_REQUEST_ID_PREFIX}runtime-${Date.now()}` } });
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
      await runtime.pool.destroy().catch(() => undefined);
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
      log({ level: "info", msg: "the edge runtime answers again", runtime: runtime.origin });
    })().finally(() => (restarting = undefined)));

  const forward = (options: Dispatcher.RequestOptions): Promise<Dispatcher.ResponseData> =>
    options.body ? forwardOnFreshConnection(runtime.origin, options) : forwardWithRetry(runtime.pool, options);
  const server = http.createServer(async (req, res) => {
    const started = Date.now();
    const headers: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value === undefined || HOP_BY_HOP.has(name)) continue;
      headers[name] = value;
    }
    // The Worker names its token service by the host the client used (auth.ts realmOf).
    if (req.headers.host) headers["x-forwarded-host"] = req.headers.host;
    // As Cloudflare does: the client's address, whatever the client says (the tracker binds peer ids to it).
    headers["cf-connecting-ip"] = (req.socket.remoteAddress ?? "").replace(/^::ffff:(?=\d+\.)/, "");
    const hasBody = req.headers["content-length"] !== undefined || req.headers["transfer-encoding"] !== undefined;
    try {
      const response = await forward({
        method: req.method as Dispatcher.HttpMethod,
        path: req.url ?? "/",
        headers,
        body: hasBody ? req : null,
      });
      const outHeaders: Record<string, string | string[]> = {};
      for (const [name, value] of Object.entries(response.headers)) {
        if (value !== undefined && !HOP_BY_HOP.has(name)) outHeaders[name] = value;
      }
      heard();
      res.writeHead(response.statusCode, outHeaders);
      response.body.on("data", heard);
      response.body.pipe(res);
      response.body.on("error", () => res.destroy());
      // The Worker logs each request itself (with its request id); the front logs only what goes wrong.
      res.on("close", () => {
        if (!res.writableFinished) {
          response.body.destroy();
          log({ level: "warn", msg: "response cut off", method: req.method, path: req.url, status: response.statusCode, ms: Date.now() - started });
        }
      });
    } catch (error) {
      log({ level: "error", msg: "edge runtime unreachable", method: req.method, path: req.url, error: String(error) });
      if (!res.headersSent) {
        res.writeHead(502, { "Content-Type": "application/json" });
        res.end(JSON.stringify({ errors: [{ code: "UNKNOWN", message: "edge runtime unavailable" }] }));
      } else {
        res.destroy();
      }
      req.resume();
    }
  });
  server.keepAliveTimeout = 65_000;
  server.requestTimeout = 0; // big uploads may take long; each chunk streams.
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host ?? "127.0.0.1", () => resolve());
  });
  const address = server.address() as { port: number };
  const url = `http://${options.host ?? "127.0.0.1"}:${address.port}`;
  return {
    url,
    get runtimeUrl() {
      return runtime.origin;
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
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const grace = setTimeout(() => server.closeAllConnections(), CLOSE_GRACE_MS);
      await closed;
      clearTimeout(grace);
      await runtime.pool.destroy().catch(() => undefined);
      await runtime.miniflare.dispose().catch(() => undefined); // disposed already if its last restart failed
    },
  };
}

/** The miniflare runtime behind the front, and the connections to it. */
interface Runtime {
  miniflare: Miniflare;
  /** Its plain-HTTP origin, `http://127.0.0.1:PORT`. */
  origin: string;
  pool: Pool;
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

/** Socket errors that mean a keep-alive connection was closed under a request. */
const STALE_SOCKET_CODES = new Set(["UND_ERR_SOCKET", "ECONNRESET", "EPIPE", "UND_ERR_CLOSED"]);

/**
 * A request without a body, retried once when the keep-alive connection it went out on turns out
 * to be closed (workerd closes idle connections; after its event loop was busy with a big chunk,
 * it closes them all at once, racing requests already on their way).
 */
async function forwardWithRetry(pool: Pool, options: Dispatcher.RequestOptions): Promise<Dispatcher.ResponseData> {
  try {
    return await pool.request(options);
  } catch (error) {
    if (!STALE_SOCKET_CODES.has((error as NodeJS.ErrnoException).code ?? "")) throw error;
    return pool.request(options);
  }
}

/**
 * A request with a body (an upload chunk, an announce) cannot be retried once its stream was
 * read, so it never rides a reused keep-alive connection: it gets a connection of its own.
 */
async function forwardOnFreshConnection(origin: URL | string, options: Dispatcher.RequestOptions): Promise<Dispatcher.ResponseData> {
  const client = new Client(origin, { bodyTimeout: 0, headersTimeout: 0 });
  const closeClient = () => void client.close().catch(() => undefined);
  try {
    const response = await client.request({ ...options, reset: true });
    response.body.once("close", closeClient);
    return response;
  } catch (error) {
    closeClient();
    throw error;
  }
}

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
