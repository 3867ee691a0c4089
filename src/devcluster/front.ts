import { STATUS_CODES } from "node:http";
import net from "node:net";
import { BufferPool } from "../agent-node/p2p/buffer-pool.js";
import { RequestFramer, type FramerOutput, type RequestHead } from "./request-framer.js";
import { ResponseFramer } from "./response-framer.js";

/**
 * The devcluster edge's front: a relay before workerd's plain-HTTP port that moves bytes, not
 * HTTP messages. A client's requests go through a RequestFramer (each head rewritten, each body
 * passed through as it came); the runtime's answers come back through a ResponseFramer (only the
 * head is rewritten). A blob read therefore costs the front one socket-to-socket copy — the
 * undici-based front it replaces took ~4 CPU-seconds per GiB read, more than the runtime, and
 * halved the GET rate. A request with a body goes to the runtime on a connection of its own, asked
 * to close after the answer (it cannot be sent again); bodiless ones ride kept-alive connections,
 * and one that the runtime's closing of an idle connection caught is sent once more on a new one.
 *
 * Why a front at all: workerd stalls a TLS ClientHello on its plain-HTTP port (skopeo and podman
 * try HTTPS first and would wait Go's 10 s handshake timeout on every call), it sets the client's
 * address only when the client did not (the tracker binds peer ids to it), and it never answers
 * `Expect: 100-continue` (curl then waits a second before every body over 1 MiB).
 */
export interface FrontOptions {
  host: string;
  port: number;
  /** Where the runtime listens now (it changes when the edge restarts it). */
  upstream: () => { host: string; port: number };
  /** Every chunk the runtime sends: a sign of life. */
  onUpstreamData?: () => void;
  log: (record: Record<string, unknown>) => void;
}

export interface Front {
  url: string;
  /** Stops accepting; connections between requests close at once, the rest after `graceMs` at most. */
  close(graceMs: number): Promise<void>;
  /** Cuts every connection to the runtime now (it is being replaced). */
  dropUpstreams(): void;
}

/**
 * The runtime's answers are read into buffers kept for reuse (net's `onread`), each back in the
 * pool once the client's socket has written it: a fresh 64 KiB buffer per read, outside V8's heap,
 * had V8 collect garbage for "external memory pressure" about once per 64 MiB, and in this process
 * (miniflare and wrangler loaded) each collection cost tens of milliseconds — as much CPU as the
 * copy itself.
 */
const READ_BYTES = 256 * 1024;
const readPool = new BufferPool(8 * 1024 * 1024);

const UNAVAILABLE = JSON.stringify({ errors: [{ code: "UNKNOWN", message: "edge runtime unavailable" }] });

/** A final answer the front gives itself before closing: a JSON OCI error for 502, no body otherwise (as Node's server). */
function answer(status: number, body = ""): string {
  const type = body ? `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` : "";
  return `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\n${type}\r\n${body}`;
}

/** A connection to the runtime, and the request it carries now (none while it waits in the idle pool). */
interface Upstream {
  socket: net.Socket;
  exchange: Exchange | undefined;
  /** It carried an answer before: the runtime may close it under the next request (see replay). */
  reused: boolean;
}

/** One request on its way: its connection to the runtime and what its answer looks like so far. */
interface Exchange {
  head: RequestHead;
  upstream: Upstream;
  response: ResponseFramer;
  /** All of the request was read from the client. */
  sent: boolean;
  /** A byte of the answer reached the client. */
  answered: boolean;
  onAnswer(buffer: Buffer, length: number): void;
  onError(error: Error): void;
  onClose(): void;
}

/** Kept-alive runtime connections waiting for a bodiless request. */
const MAX_IDLE_UPSTREAMS = 64;

export async function startFront(options: FrontOptions): Promise<Front> {
  /** Each client connection, and whether it is between requests (see close). */
  const connections = new Map<net.Socket, { idle: () => boolean }>();
  const upstreams = new Set<net.Socket>();
  const idleUpstreams: Upstream[] = [];

  const connect = (): Upstream => {
    const target = options.upstream();
    const upstream: Upstream = { socket: undefined as unknown as net.Socket, exchange: undefined, reused: false };
    upstream.socket = net.connect({
      host: target.host,
      port: target.port,
      allowHalfOpen: true,
      noDelay: true,
      onread: {
        buffer: () => readPool.take(READ_BYTES),
        callback: (length, buffer) => {
          if (upstream.exchange) upstream.exchange.onAnswer(buffer as Buffer, length);
          else {
            readPool.give(buffer as Buffer);
            upstream.socket.destroy(); // bytes nobody asked for
          }
          return true;
        },
      },
    });
    upstreams.add(upstream.socket);
    upstream.socket.on("error", (error) => upstream.exchange?.onError(error));
    upstream.socket.on("end", () => upstream.socket.end());
    upstream.socket.on("close", () => {
      upstreams.delete(upstream.socket);
      const at = idleUpstreams.indexOf(upstream);
      if (at >= 0) idleUpstreams.splice(at, 1);
      upstream.exchange?.onClose();
    });
    return upstream;
  };
  /** A bodiless request rides an idle connection when there is one; a request with a body gets its own. */
  const upstreamFor = (head: RequestHead): Upstream => {
    const idle = head.body ? undefined : idleUpstreams.pop();
    if (!idle) return connect();
    idle.reused = true;
    return idle;
  };
  /** An answered connection goes back to the pool if the runtime keeps it open, else it is closed. */
  const release = (upstream: Upstream, keep: boolean) => {
    upstream.exchange = undefined;
    if (keep && !upstream.socket.destroyed && idleUpstreams.length < MAX_IDLE_UPSTREAMS) idleUpstreams.push(upstream);
    else upstream.socket.end();
  };

  const serve = (client: net.Socket) => {
    const clientAddress = (client.remoteAddress ?? "").replace(/^::ffff:(?=\d+\.)/, "");
    const framer = new RequestFramer({ clientAddress });
    /** What the framer gave that is not done yet: the next request waits for the answer before it. */
    const queue: FramerOutput[] = [];
    let exchange: Exchange | undefined;
    let clientEnded = false;
    connections.set(client, { idle: () => !exchange && queue.length === 0 && framer.idle });
    client.on("close", () => connections.delete(client));

    const finishWith = (text: string) => {
      if (client.writable) client.end(text);
      else client.destroy();
    };
    const start = (head: RequestHead, upstream: Upstream): Exchange => {
      const current: Exchange = {
        head,
        upstream,
        response: new ResponseFramer({ method: head.method, clientCloses: head.close }),
        sent: false,
        answered: false,
        onAnswer(buffer, length) {
          options.onUpstreamData?.();
          const step = current.response.push(buffer.subarray(0, length));
          if ("error" in step) {
            readPool.give(buffer);
            options.log({ level: "error", msg: "the edge runtime's answer could not be relayed", error: step.error });
            upstream.socket.destroy();
            client.destroy();
            return;
          }
          if (step.forward.length === 0) readPool.give(buffer);
          step.forward.forEach((bytes, i) => {
            current.answered = true;
            const last = i === step.forward.length - 1;
            if (!client.write(bytes, last ? () => readPool.give(buffer) : undefined)) upstream.socket.pause();
          });
          // Whole by its own framing: done, whether or not the runtime has closed yet.
          if (current.response.done) {
            upstream.socket.resume();
            release(upstream, !head.body && !current.response.upstreamCloses);
            settle(current);
          }
        },
        onError(error) {
          if (exchange !== current) return; // settled already: its answer was whole
          if (replay(current)) return;
          options.log({ level: current.answered ? "warn" : "error", msg: current.answered ? "edge runtime connection lost mid-answer" : "edge runtime unreachable", error: String(error) });
          exchange = undefined;
          if (current.answered) client.destroy();
          else finishWith(answer(502, UNAVAILABLE));
        },
        onClose() {
          if (exchange !== current || client.destroyed) return;
          if (current.response.complete) return settle(current);
          if (replay(current)) return;
          exchange = undefined;
          // Cut off (or never answered): the client must see its connection end, not wait for the rest.
          if (!current.answered) return finishWith(answer(502, UNAVAILABLE));
          options.log({ level: "warn", msg: "answer cut off by the edge runtime" });
          client.destroy();
        },
      };
      upstream.exchange = current;
      upstream.socket.write(head.bytes);
      return current;
    };
    /**
     * The runtime closes idle kept-alive connections, and may do so just as a request goes out on
     * one: a bodiless request that got no byte of an answer there is sent once more, on a new one.
     */
    const replay = (current: Exchange): boolean => {
      if (current.head.body || current.answered || !current.upstream.reused) return false;
      current.upstream.exchange = undefined;
      exchange = start(current.head, connect());
      exchange.sent = current.sent;
      return true;
    };
    /** The answer is whole: the client's connection goes on to its next request, or ends. */
    const settle = (current: Exchange) => {
      if (exchange !== current) return;
      exchange = undefined;
      waitingForDrain = false;
      if (current.response.clientCloses || clientEnded) return void client.end();
      // Answered before the request was all read (a refusal): the rest of its body is read and
      // dropped, and the connection ends with it, as an HTTP server would do (the client, still
      // sending, reads the answer once it is done).
      if (!current.sent) closeAfterBody = true;
      client.resume();
      pump();
    };
    let waitingForDrain = false;
    let closeAfterBody = false;
    const pump = () => {
      while (queue.length > 0) {
        const step = queue[0]!;
        if ((step.kind === "head" || step.kind === "refuse") && exchange) {
          client.pause(); // a pipelined request waits for the answer before it
          return;
        }
        queue.shift();
        switch (step.kind) {
          case "refuse":
            options.log({ level: "warn", msg: "request refused by the front", status: step.status, reason: step.reason, client: clientAddress });
            client.removeAllListeners("data");
            return finishWith(answer(step.status));
          case "head":
            exchange = start(step, upstreamFor(step));
            break;
          case "continue":
            client.write("HTTP/1.1 100 Continue\r\n\r\n");
            break;
          case "body":
            if (exchange && !exchange.upstream.socket.write(step.bytes) && !waitingForDrain) {
              waitingForDrain = true;
              client.pause();
              exchange.upstream.socket.once("drain", () => {
                waitingForDrain = false;
                client.resume();
              });
            }
            break;
          case "end":
            if (exchange) exchange.sent = true;
            else if (closeAfterBody) return void client.end();
            break;
        }
      }
      if (clientEnded && !exchange) client.end();
    };
    client.on("data", (chunk: Buffer) => {
      queue.push(...framer.push(chunk));
      pump();
    });
    client.on("drain", () => exchange?.upstream.socket.resume());
    client.on("end", () => {
      clientEnded = true;
      // Gone in the middle of a request (a killed client): the runtime must see the request end
      // unfinished, as it would have, not wait for the rest of a body that will never come.
      if (exchange && !exchange.sent) {
        exchange.upstream.socket.destroy();
        client.destroy();
        return;
      }
      if (!exchange && queue.length === 0) client.end();
    });
    client.on("error", () => exchange?.upstream.socket.destroy());
    client.on("close", () => exchange?.upstream.socket.destroy());
  };

  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, serve);
  server.on("error", (error) => options.log({ level: "error", msg: "front error", error: String(error) }));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address() as net.AddressInfo;
  return {
    url: `http://${options.host}:${address.port}`,
    async close(graceMs) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      const deadline = Date.now() + graceMs;
      const sweep = () => {
        for (const [socket, { idle }] of connections) if (idle() || Date.now() >= deadline) socket.destroy();
      };
      sweep();
      const sweeper = setInterval(sweep, 50);
      await closed;
      clearInterval(sweeper);
    },
    dropUpstreams() {
      idleUpstreams.length = 0;
      for (const socket of upstreams) socket.destroy();
    },
  };
}
