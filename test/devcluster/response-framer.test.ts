import { describe, expect, it } from "vitest";
import { ResponseFramer } from "../../src/devcluster/response-framer.js";

/** Feeds `input` in pieces of `step` bytes; what goes to the client, and how the answer stands. */
function relay(input: string, options: { method?: string; clientCloses?: boolean } = {}, step = Number.MAX_SAFE_INTEGER) {
  const framer = new ResponseFramer({ method: options.method ?? "GET", clientCloses: options.clientCloses ?? false });
  const out: Uint8Array[] = [];
  let error: string | undefined;
  const bytes = Buffer.from(input, "latin1");
  for (let at = 0; at < bytes.length && !error; at += step) {
    const result = framer.push(bytes.subarray(at, at + step));
    if ("error" in result) error = result.error;
    else out.push(...result.forward);
  }
  return { text: Buffer.concat(out).toString("latin1"), framer, error };
}

describe("ResponseFramer", () => {
  it("takes the runtime's Connection: close out of a framed answer and passes the body as it came", () => {
    for (const step of [1, 5, 1000]) {
      const { text, framer } = relay("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\nX-A: b\r\n\r\nhello", {}, step);
      expect(text).toBe("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello");
      expect(framer.done).toBe(true);
      expect(framer.clientCloses).toBe(false);
    }
  });

  it("keeps Connection: close for a client that closes, and for a body that lasts until the close", () => {
    expect(relay("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", { clientCloses: true }).text).toMatch(/Connection: close/);
    const untilClose = relay("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nsome bytes");
    expect(untilClose.text).toBe("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nsome bytes");
    expect(untilClose.framer.done).toBe(false);
    expect(untilClose.framer.complete).toBe(true);
    expect(untilClose.framer.clientCloses).toBe(true);
  });

  it("says whether the runtime closes its connection after the answer", () => {
    expect(relay("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").framer.upstreamCloses).toBe(false);
    expect(relay("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: Close\r\n\r\n").framer.upstreamCloses).toBe(true);
    expect(relay("HTTP/1.1 200 OK\r\n\r\nuntil the end").framer.upstreamCloses).toBe(true);
  });

  it("knows a cut-off answer from a whole one, framed by length or chunks", () => {
    expect(relay("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort").framer.complete).toBe(false);
    const chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    for (const step of [1, 3, 100]) expect(relay(chunked, {}, step).framer.done).toBe(true);
    expect(relay(chunked.slice(0, -4)).framer.complete).toBe(false);
  });

  it("gives the answer to a HEAD, a 204 and a 304 no body, whatever their Content-Length", () => {
    expect(relay("HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", { method: "HEAD" }).framer.done).toBe(true);
    expect(relay("HTTP/1.1 204 No Content\r\n\r\n").framer.done).toBe(true);
    expect(relay("HTTP/1.1 304 Not Modified\r\nContent-Length: 3\r\n\r\n").framer.done).toBe(true);
  });

  it("passes an interim answer through and waits for the final one", () => {
    const { text, framer } = relay("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
    expect(text).toBe("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
    expect(framer.done).toBe(true);
  });

  it("refuses what is not an answer, and bytes past the end of one", () => {
    expect(relay("SSH-2.0-x\r\n\r\n").error).toMatch(/status line/);
    expect(relay("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nab").error).toMatch(/more than its answer/);
  });
});
