import { ChunkedBody } from "./chunked-body.js";

/**
 * The answer side of the devcluster's front, as a pure state machine: the answer's bytes go back to
 * the client as they came but for its head, where the runtime's `Connection: close` (it closes the
 * connection of a request with a body: the front asks it to) is taken out unless the client's
 * connection ends too. The body's framing is followed to know when the answer is whole (the
 * connection then carries the next bodiless request) and, when the runtime's connection ends,
 * whether it was whole or cut off.
 */
export type ResponseStep = { forward: Uint8Array[] } | { error: string };

export interface ResponseFramerOptions {
  /** The request's method: the answer to a HEAD has no body, whatever its Content-Length says. */
  method: string;
  /** The client's connection closes after this answer (it asked, or spoke HTTP/1.0). */
  clientCloses: boolean;
}

const MAX_HEAD_BYTES = 64 * 1024;
const CRLF_CRLF = Buffer.from("\r\n\r\n");
const STATUS_LINE = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/;

type Body = { kind: "none" } | { kind: "length"; left: number } | { kind: "chunked"; scanner: ChunkedBody; done: boolean } | { kind: "until-close" };

export class ResponseFramer {
  private pending: Buffer = Buffer.alloc(0);
  private body: Body | undefined;
  private closesClient = false;
  private closesUpstream = false;

  constructor(private readonly options: ResponseFramerOptions) {}

  push(chunk: Uint8Array): ResponseStep {
    const forward: Uint8Array[] = [];
    let data: Buffer = this.pending.length ? Buffer.concat([this.pending, chunk]) : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    this.pending = Buffer.alloc(0);
    while (data.length > 0) {
      if (!this.body) {
        const end = data.indexOf(CRLF_CRLF);
        if (end < 0) {
          if (data.length > MAX_HEAD_BYTES) return { error: "answer head too large" };
          this.pending = Buffer.from(data); // a copy: the caller reuses its read buffers
          break;
        }
        const head = this.head(data.subarray(0, end).toString("latin1"));
        if ("error" in head) return head;
        forward.push(head.bytes);
        data = data.subarray(end + 4);
        continue;
      }
      const body: Body = this.body;
      if (body.kind === "length" && body.left > 0) {
        const take = Math.min(body.left, data.length);
        body.left -= take;
        forward.push(data.subarray(0, take));
        data = data.subarray(take);
      } else if (body.kind === "chunked" && !body.done) {
        const scan = body.scanner.scan(data);
        if ("error" in scan) return { error: `answer body: ${scan.error}` };
        body.done = scan.done;
        forward.push(data.subarray(0, scan.consumed));
        data = data.subarray(scan.consumed);
      } else if (body.kind === "until-close") {
        forward.push(data);
        data = data.subarray(data.length);
      } else {
        return { error: "the runtime sent more than its answer" };
      }
    }
    return { forward };
  }

  /** Whether the answer was whole when the runtime's connection ended (else it was cut off). */
  get complete(): boolean {
    const body = this.body;
    if (!body) return false;
    if (body.kind === "length") return body.left === 0;
    if (body.kind === "chunked") return body.done;
    return true;
  }

  /** Whether the whole answer has passed and its framing says so (never for one that lasts until the close). */
  get done(): boolean {
    const body = this.body;
    return body !== undefined && body.kind !== "until-close" && this.complete;
  }

  /** Whether the runtime said it closes its connection after this answer. */
  get upstreamCloses(): boolean {
    return this.closesUpstream;
  }

  /** Whether the client's connection must close after this answer. */
  get clientCloses(): boolean {
    return this.closesClient;
  }

  private head(text: string): { bytes: Uint8Array } | { error: string } {
    const lines = text.split("\r\n");
    const status = STATUS_LINE.exec(lines[0] ?? "");
    if (!status) return { error: `malformed status line ${JSON.stringify((lines[0] ?? "").slice(0, 40))}` };
    const code = Number(status[1]);
    const fields = lines.slice(1).map((line) => {
      const colon = line.indexOf(":");
      return [line.slice(0, Math.max(0, colon)), line.slice(colon + 1).trim()] as const;
    });
    const value = (name: string) => fields.find(([n]) => n.toLowerCase() === name)?.[1];
    // An interim answer (100, 103) goes through as it is; the final one follows it.
    if (code >= 100 && code < 200) return { bytes: Buffer.from(`${text}\r\n\r\n`, "latin1") };
    const coding = value("transfer-encoding")?.toLowerCase();
    const length = value("content-length");
    if (this.options.method === "HEAD" || code === 204 || code === 304) this.body = { kind: "none" };
    else if (coding !== undefined) this.body = coding === "chunked" ? { kind: "chunked", scanner: new ChunkedBody(), done: false } : { kind: "until-close" };
    else if (length !== undefined && /^\d+$/.test(length)) this.body = { kind: "length", left: Number(length) };
    else this.body = { kind: "until-close" };
    this.closesClient = this.options.clientCloses || this.body.kind === "until-close";
    this.closesUpstream = this.body.kind === "until-close" || (value("connection") ?? "").toLowerCase().split(",").some((t) => t.trim() === "close");
    const kept = fields.filter(([n]) => !["connection", "keep-alive"].includes(n.toLowerCase()));
    if (this.closesClient) kept.push(["Connection", "close"]);
    return { bytes: Buffer.from(`${lines[0]}\r\n${kept.map(([n, v]) => `${n}: ${v}\r\n`).join("")}\r\n`, "latin1") };
  }
}
