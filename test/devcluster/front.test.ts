import { afterEach, describe, expect, it } from "vitest";
import http from "node:http";
import net from "node:net";
import { startFront, type Front } from "../../src/devcluster/front.js";

/**
 * The front's relay on real sockets, before a Node HTTP server standing in for workerd: what the
 * runtime saw of each request, what the client got back, and how connections to the runtime are
 * used (the framers have their own tests).
 */
interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  socket: net.Socket;
}

let cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  cleanups = [];
});

async function runtime(handler: (req: http.IncomingMessage, res: http.ServerResponse, seen: Seen) => void): Promise<{ port: number; seen: Seen[]; server: http.Server }> {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    let body = "";
    req.setEncoding("latin1");
    req.on("data", (chunk: string) => (body += chunk));
    req.on("end", () => {
      const entry = { method: req.method!, url: req.url!, headers: req.headers, body, socket: req.socket };
      seen.push(entry);
      handler(req, res, entry);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanups.push(() => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { port: (server.address() as net.AddressInfo).port, seen, server };
}

async function front(port: number, logs: Array<Record<string, unknown>> = []): Promise<Front & { port: number }> {
  const f = await startFront({ host: "127.0.0.1", port: 0, upstream: () => ({ host: "127.0.0.1", port }), log: (r) => logs.push(r) });
  cleanups.push(() => f.close(100));
  return { ...f, port: Number(new URL(f.url).port) };
}

/** Writes `input` on one connection and collects everything until the front closes it. */
function exchange(port: number, input: string | Buffer, options: { source?: string } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: "127.0.0.1", ...(options.source ? { localAddress: options.source } : {}) });
    let text = "";
    const done = () => {
      socket.destroy();
      resolve(text);
    };
    socket.setEncoding("latin1");
    socket.on("data", (chunk: string) => (text += chunk));
    socket.on("end", done);
    socket.on("error", reject);
    socket.write(input);
  });
}

/** Writes `first`, lets `react` answer what has come so far (once per chunk), and returns all of it once the front closes. */
function conversation(port: number, first: string, react: (text: string, socket: net.Socket) => void): Promise<string> {
  const socket = net.connect(port, "127.0.0.1");
  socket.setEncoding("latin1");
  let text = "";
  socket.on("data", (chunk: string) => {
    text += chunk;
    react(text, socket);
  });
  socket.write(first);
  return new Promise((resolve) => socket.on("end", () => resolve(text)));
}

describe("the devcluster front", () => {
  it("relays keep-alive requests in order, each head rewritten, on one runtime connection for bodiless ones", async () => {
    const rt = await runtime((req, res) => res.end(`answer to ${req.url}`));
    const f = await front(rt.port);
    const text = await exchange(
      f.port,
      "GET /a HTTP/1.1\r\nHost: edge:15000\r\nCF-Connecting-IP: 10.9.9.9\r\n\r\nGET /b HTTP/1.1\r\nHost: edge:15000\r\nConnection: close\r\n\r\n",
      { source: "127.0.0.3" },
    );
    expect(text).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*answer to \/aHTTP\/1\.1 200 OK\r\n[\s\S]*answer to \/b$/);
    expect(rt.seen.map((s) => [s.url, s.headers["cf-connecting-ip"], s.headers["x-forwarded-host"]])).toEqual([
      ["/a", "127.0.0.3", "edge:15000"],
      ["/b", "127.0.0.3", "edge:15000"],
    ]);
    expect(rt.seen[0]!.socket).toBe(rt.seen[1]!.socket); // the kept-alive runtime connection carried both
  });

  it("gives a request with a body a runtime connection of its own, closed after its answer", async () => {
    const rt = await runtime((req, res) => res.end(`got ${req.headers["content-length"]}`));
    const f = await front(rt.port);
    const text = await exchange(f.port, "PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhelloGET /y HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    expect(text).toMatch(/got 5HTTP\/1\.1 200 OK[\s\S]*got undefined$/);
    expect(rt.seen[0]!.body).toBe("hello");
    expect(rt.seen[0]!.headers.connection).toBe("close");
    expect(rt.seen[0]!.socket).not.toBe(rt.seen[1]!.socket);
    // The runtime's Connection: close is not the client's: its connection went on to the GET.
    expect(text.slice(0, text.indexOf("\r\n\r\n"))).not.toMatch(/connection: close/i);
  });

  it("answers Expect: 100-continue itself, then relays the body", async () => {
    const rt = await runtime((req, res, seen) => res.end(`got ${seen.body.length} bytes, expect=${req.headers.expect ?? "none"}`));
    const f = await front(rt.port);
    const text = await conversation(f.port, "PUT /x HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 10\r\nConnection: close\r\n\r\n", (sofar, socket) => {
      if (sofar === "HTTP/1.1 100 Continue\r\n\r\n") socket.write("0123456789");
    });
    expect(text).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK\r\n[\s\S]*got 10 bytes, expect=none$/);
  });

  it("sends a bodiless request once more when the runtime closed the idle connection it went out on", async () => {
    let first = true;
    const rt = await runtime((req, res) => res.end(`answer to ${req.url}`));
    const f = await front(rt.port);
    const text = await conversation(f.port, "GET /a HTTP/1.1\r\nHost: h\r\n\r\n", (sofar, socket) => {
      if (first && sofar.endsWith("answer to /a")) {
        first = false;
        rt.server.closeIdleConnections(); // the pooled connection goes away, as workerd closes idle ones
        socket.write("GET /b HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
      }
    });
    expect(text).toMatch(/answer to \/a[\s\S]*answer to \/b$/);
  });

  it("answers 502 when the runtime is unreachable, and cuts the client off when the runtime does", async () => {
    const unused = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, "127.0.0.1", () => {
        const port = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(port));
      });
    });
    const logs: Array<Record<string, unknown>> = [];
    const down = await front(unused, logs);
    expect(await exchange(down.port, "GET /v2/ HTTP/1.1\r\nHost: h\r\n\r\n")).toMatch(/^HTTP\/1\.1 502 Bad Gateway\r\n[\s\S]*edge runtime unavailable/);
    expect(logs.some((l) => l.msg === "edge runtime unreachable")).toBe(true);

    const rt = await runtime((_req, res) => {
      res.writeHead(200, { "Content-Length": "100" });
      res.write("only part of it");
      setTimeout(() => res.socket?.destroy(), 20);
    });
    const cut = await front(rt.port, logs);
    const text = await exchange(cut.port, "GET /blob HTTP/1.1\r\nHost: h\r\n\r\n");
    expect(text.endsWith("only part of it")).toBe(true); // and then the connection ended, not kept waiting
  });

  it("ends the runtime's request unfinished when the client goes away in the middle of its body", async () => {
    let resolveGone: (complete: boolean) => void = () => undefined;
    let resolveStarted: () => void = () => undefined;
    const gone = new Promise<boolean>((resolve) => (resolveGone = resolve));
    const started = new Promise<void>((resolve) => (resolveStarted = resolve));
    const server = http.createServer((req) => {
      req.once("data", () => resolveStarted());
      req.resume();
      req.on("close", () => resolveGone(req.complete));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    cleanups.push(() => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    });
    const f = await front((server.address() as net.AddressInfo).port);
    const socket = net.connect(f.port, "127.0.0.1");
    socket.write("PATCH /v2/x/blobs/uploads/1 HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\nonly ten b");
    await started; // the runtime is reading the body
    socket.end(); // then FIN, as a killed client's kernel sends it
    expect(await gone).toBe(false);
  });

  it("refuses a TLS ClientHello at once and a request it cannot frame", async () => {
    const rt = await runtime((_req, res) => res.end("never"));
    const f = await front(rt.port);
    expect(await exchange(f.port, Buffer.from([0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00]))).toBe("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
    expect(await exchange(f.port, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n")).toMatch(/^HTTP\/1\.1 400 Bad Request/);
    expect(rt.seen).toHaveLength(0);
  });
});
