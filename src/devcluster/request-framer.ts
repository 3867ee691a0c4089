import { ChunkedBody } from "./chunked-body.js";

/**
 * The request side of the devcluster's front, as a pure state machine: bytes a client sent go in,
 * what to forward to the runtime comes out, request by request — each request head parsed and
 * rewritten (the client's address set as Cloudflare sets it, hop-by-hop fields dropped, the runtime
 * asked to close its connection after answering a request with a body: see front.ts), each body passed through as it
 * came, framed by its Content-Length or its chunked coding so that the next head is found.
 *
 * A request this cannot frame safely (a malformed head, Content-Length beside Transfer-Encoding,
 * a coding other than chunked) ends the connection with a refusal, as Node's server answered it;
 * so does anything that does not start like a request line — a TLS ClientHello gets its 400 at
 * once, not after waiting for a head that never comes.
 */
export type FramerOutput =
  /** A request begins: forward its rewritten head. */
  | {
      kind: "head";
      bytes: Uint8Array;
      method: string;
      /** The client asked to close its connection after this answer (or spoke HTTP/1.0). */
      close: boolean;
      /** A body follows: the head asks the runtime to close its connection after the answer (front.ts). */
      body: boolean;
    }
  /** The client asked `Expect: 100-continue`: answer it (the head forwarded carries no Expect). */
  | { kind: "continue" }
  /** Bytes of the current request's body, as they came. */
  | { kind: "body"; bytes: Uint8Array }
  /** The current request is complete. */
  | { kind: "end" }
  /** Answer this and close the connection; nothing more is read. */
  | { kind: "refuse"; status: 400 | 431 | 501; reason: string };

/** The step that begins a request. */
export type RequestHead = Extract<FramerOutput, { kind: "head" }>;

export interface FramerOptions {
  /** The client's address, as Cloudflare's `CF-Connecting-IP` carries it. */
  clientAddress: string;
}

/** The most a request head (request line and fields) may take; Node's default is 16 KiB. */
export const MAX_HEAD_BYTES = 64 * 1024;

/**
 * Fields the front sets or that speak of one connection only (RFC 9110 §7.6.1); `connection` also
 * names others. A client's own `CF-Connecting-IP` / `X-Forwarded-Host` never reach the Worker.
 */
const DROPPED = new Set(["connection", "keep-alive", "proxy-connection", "upgrade", "te", "expect", "cf-connecting-ip", "x-forwarded-host"]);
/** Fields a Connection header may not take away: the message's framing and its host. */
const FRAMING = new Set(["host", "content-length", "transfer-encoding"]);

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const REQUEST_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) (\S+) HTTP\/1\.([01])$/;
const CRLF_CRLF = Buffer.from("\r\n\r\n");

type State = { at: "head" } | { at: "body"; left: number } | { at: "chunked"; body: ChunkedBody } | { at: "refused" };

export class RequestFramer {
  private state: State = { at: "head" };
  private pending: Buffer = Buffer.alloc(0);

  constructor(private readonly options: FramerOptions) {}

  /** Takes the next bytes from the client; returns what to do with them, in order. */
  push(chunk: Uint8Array): FramerOutput[] {
    const out: FramerOutput[] = [];
    if (this.state.at === "refused") return out;
    let data: Buffer = this.pending.length ? Buffer.concat([this.pending, chunk]) : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    this.pending = Buffer.alloc(0);
    while (data.length > 0) {
      const state: State = this.state;
      if (state.at === "head") {
        const end = data.indexOf(CRLF_CRLF);
        if (end < 0) {
          const refusal = this.refuseEarly(data);
          if (refusal) return [...out, refusal];
          this.pending = data;
          return out;
        }
        if (end + 4 > MAX_HEAD_BYTES) return [...out, this.refuse(431, "request head too large")];
        const result = this.head(data.subarray(0, end).toString("latin1"));
        out.push(...result);
        if (result.at(-1)?.kind === "refuse") return out;
        data = data.subarray(end + 4);
      } else if (state.at === "body") {
        const take = Math.min(state.left, data.length);
        out.push({ kind: "body", bytes: data.subarray(0, take) });
        data = data.subarray(take);
        if (state.left === take) this.finish(out);
        else this.state = { at: "body", left: state.left - take };
      } else if (state.at === "chunked") {
        const scan = state.body.scan(data);
        if ("error" in scan) return [...out, this.refuse(400, scan.error)];
        out.push({ kind: "body", bytes: data.subarray(0, scan.consumed) });
        data = data.subarray(scan.consumed);
        if (scan.done) this.finish(out);
      } else {
        return out;
      }
    }
    return out;
  }

  /** Whether the connection is between requests (nothing of a request half read). */
  get idle(): boolean {
    return this.state.at === "head" && this.pending.length === 0;
  }

  private finish(out: FramerOutput[]): void {
    out.push({ kind: "end" });
    this.state = { at: "head" };
  }

  /** A head not yet complete that cannot become a request: refused now, not once 64 KiB came. */
  private refuseEarly(data: Buffer): FramerOutput | undefined {
    // Empty lines before a request line are allowed (RFC 9112 §2.2); after them, a method token and a space.
    const text = data.toString("latin1").replace(/^(\r\n)+/, "");
    const method = /^[^ ]*/.exec(text)![0];
    if (method.length > 0 && !TOKEN.test(method)) return this.refuse(400, "not an HTTP request");
    if (data.length > MAX_HEAD_BYTES) return this.refuse(431, "request head too large");
    return undefined;
  }

  private head(text: string): FramerOutput[] {
    const lines = text.replace(/^(\r\n)+/, "").split("\r\n");
    const requestLine = REQUEST_LINE.exec(lines[0] ?? "");
    if (!requestLine) return [this.refuse(400, "malformed request line")];
    const fields: Array<[string, string]> = [];
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(":");
      const name = colon > 0 ? line.slice(0, colon) : "";
      if (!TOKEN.test(name)) return [this.refuse(400, `malformed header field ${JSON.stringify(line.slice(0, 40))}`)];
      fields.push([name, line.slice(colon + 1).trim()]);
    }
    const values = (name: string) => fields.filter(([n]) => n.toLowerCase() === name).map(([, v]) => v);
    const list = (name: string) => values(name).flatMap((v) => v.split(",").map((s) => s.trim().toLowerCase())).filter(Boolean);
    const lengths = [...new Set(list("content-length"))];
    const codings = list("transfer-encoding");
    if (codings.length > 0 && lengths.length > 0) return [this.refuse(400, "both Content-Length and Transfer-Encoding")];
    if (codings.length > 0 && (codings.length !== 1 || codings[0] !== "chunked")) return [this.refuse(501, `transfer coding ${codings.join(", ")} not supported`)];
    if (lengths.length > 1 || (lengths.length === 1 && !/^\d{1,15}$/.test(lengths[0]!))) return [this.refuse(400, "malformed Content-Length")];
    const length = lengths.length === 1 ? Number(lengths[0]) : 0;
    const named = new Set(list("connection"));
    const host = values("host")[0];
    const kept = fields.filter(([name]) => !DROPPED.has(name.toLowerCase()) && (FRAMING.has(name.toLowerCase()) || !named.has(name.toLowerCase())));
    const body = codings.length > 0 || length > 0;
    // A request with a body gets a runtime connection of its own, closed after the answer (front.ts).
    if (body) kept.push(["Connection", "close"]);
    kept.push(["CF-Connecting-IP", this.options.clientAddress]);
    if (host !== undefined) kept.push(["X-Forwarded-Host", host]);
    const out: FramerOutput[] = [
      { kind: "head", bytes: Buffer.from(`${lines[0]}\r\n${kept.map(([n, v]) => `${n}: ${v}\r\n`).join("")}\r\n`, "latin1"), method: requestLine[1]!, close: named.has("close") || requestLine[3] === "0", body },
    ];
    if (list("expect").includes("100-continue")) out.push({ kind: "continue" });
    if (codings.length > 0) this.state = { at: "chunked", body: new ChunkedBody() };
    else if (length > 0) this.state = { at: "body", left: length };
    else out.push({ kind: "end" });
    return out;
  }

  private refuse(status: 400 | 431 | 501, reason: string): FramerOutput & { kind: "refuse" } {
    this.state = { at: "refused" };
    this.pending = Buffer.alloc(0);
    return { kind: "refuse", status, reason };
  }
}
