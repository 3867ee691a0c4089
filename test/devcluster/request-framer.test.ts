import { describe, expect, it } from "vitest";
import { MAX_HEAD_BYTES, RequestFramer, type FramerOutput } from "../../src/devcluster/request-framer.js";

const CLIENT = "127.0.0.2";

/** What the framer forwards for `input`, fed in pieces of `step` bytes, and its other steps. */
function run(input: string | Buffer, step = Number.MAX_SAFE_INTEGER): { forwarded: string; steps: FramerOutput[] } {
  const framer = new RequestFramer({ clientAddress: CLIENT });
  const bytes = Buffer.isBuffer(input) ? input : Buffer.from(input, "latin1");
  const steps: FramerOutput[] = [];
  for (let at = 0; at < bytes.length; at += step) steps.push(...framer.push(bytes.subarray(at, at + step)));
  const forwarded = Buffer.concat(steps.flatMap((s) => (s.kind === "head" || s.kind === "body" ? [s.bytes] : []))).toString("latin1");
  return { forwarded, steps };
}

const refusal = (steps: FramerOutput[]) => steps.find((s) => s.kind === "refuse");

describe("RequestFramer", () => {
  it("sets the client's address and the host it used, whatever the client said of them", () => {
    const { forwarded } = run("GET /v2/ HTTP/1.1\r\nHost: localhost:15000\r\nCF-Connecting-IP: 10.0.0.1\r\nX-Forwarded-Host: evil\r\nAccept: */*\r\n\r\n");
    expect(forwarded).toBe("GET /v2/ HTTP/1.1\r\nHost: localhost:15000\r\nAccept: */*\r\nCF-Connecting-IP: 127.0.0.2\r\nX-Forwarded-Host: localhost:15000\r\n\r\n");
  });

  it("drops hop-by-hop fields and those Connection names (the client's close is the front's to keep)", () => {
    const { forwarded } = run("GET / HTTP/1.1\r\nHost: h\r\nConnection: close, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nUpgrade: h2c\r\nTE: trailers\r\n\r\n");
    expect(forwarded).toBe("GET / HTTP/1.1\r\nHost: h\r\nCF-Connecting-IP: 127.0.0.2\r\nX-Forwarded-Host: h\r\n\r\n");
  });

  it("passes a Content-Length body through and finds the next request after it, however the bytes are cut", () => {
    const body = "x".repeat(1000);
    const input = `PUT /a HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n\r\n${body}GET /b HTTP/1.1\r\nHost: h\r\nCF-Connecting-IP: 1.2.3.4\r\n\r\n`;
    for (const step of [1, 7, 100, 4096]) {
      const { forwarded, steps } = run(input, step);
      expect(refusal(steps)).toBeUndefined();
      expect(forwarded).toBe(`PUT /a HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\nConnection: close\r\nCF-Connecting-IP: 127.0.0.2\r\nX-Forwarded-Host: h\r\n\r\n${body}GET /b HTTP/1.1\r\nHost: h\r\nCF-Connecting-IP: 127.0.0.2\r\nX-Forwarded-Host: h\r\n\r\n`);
    }
  });

  it("passes a chunked body through as it came (extensions, trailers) and rewrites the request after it", () => {
    const chunked = "5;ext=1\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\nX-Trailer: t\r\n\r\n";
    const input = `POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n${chunked}GET /b HTTP/1.1\r\nHost: h\r\nX-Forwarded-Host: evil\r\n\r\n`;
    for (const step of [1, 3, 64]) {
      const { forwarded, steps } = run(input, step);
      expect(refusal(steps)).toBeUndefined();
      expect(forwarded).toBe(`POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\nCF-Connecting-IP: 127.0.0.2\r\nX-Forwarded-Host: h\r\n\r\n${chunked}GET /b HTTP/1.1\r\nHost: h\r\nCF-Connecting-IP: 127.0.0.2\r\nX-Forwarded-Host: h\r\n\r\n`);
    }
  });

  it("never lets a body hide a second request: a head inside a Content-Length body is forwarded as body bytes", () => {
    const inner = "GET /x HTTP/1.1\r\nHost: h\r\nCF-Connecting-IP: 9.9.9.9\r\n\r\n";
    const { forwarded } = run(`POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: ${inner.length}\r\n\r\n${inner}`);
    expect(forwarded.endsWith(inner)).toBe(true);
    expect(forwarded.match(/CF-Connecting-IP/g)).toHaveLength(2); // the rewritten head's, and the body's own text
  });

  it("asks for a 100 Continue after the head of a request that expects one, and forwards no Expect", () => {
    const { forwarded, steps } = run("PUT /a HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok");
    expect(steps.map((s) => s.kind)).toEqual(["head", "continue", "body", "end"]);
    expect(forwarded).not.toMatch(/expect/i);
    expect(forwarded.endsWith("\r\n\r\nok")).toBe(true);
  });

  it("marks each request's start and end, with its method and whether the client closes after it", () => {
    const { steps } = run("HEAD /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.0\r\n\r\nGET /c HTTP/1.1\r\nConnection: close\r\n\r\n");
    expect(steps.map((s) => (s.kind === "head" ? `${s.method}${s.close ? " close" : ""}` : s.kind))).toEqual(["HEAD", "end", "GET close", "end", "GET close", "end"]);
  });

  it("asks the runtime to close its connection after a request with a body, not after a bodiless one", () => {
    const { steps } = run("PUT /a HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\nxGET /b HTTP/1.1\r\nHost: h\r\n\r\n");
    const heads = steps.flatMap((s) => (s.kind === "head" ? [{ body: s.body, text: Buffer.from(s.bytes).toString("latin1") }] : []));
    expect(heads.map((h) => [h.body, /Connection: close/.test(h.text)])).toEqual([
      [true, true],
      [false, false],
    ]);
  });

  it("refuses a TLS ClientHello at once, before any head could complete", () => {
    const hello = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]);
    expect(refusal(run(hello).steps)).toMatchObject({ status: 400 });
  });

  it("waits for a head that is still coming", () => {
    const framer = new RequestFramer({ clientAddress: CLIENT });
    expect(framer.push(Buffer.from("GET /v2/ HTT"))).toEqual([]);
    expect(framer.idle).toBe(false);
  });

  it.each([
    ["both Content-Length and Transfer-Encoding", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400],
    ["two different lengths", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400],
    ["a negative length", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", 400],
    ["a coding other than chunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501],
    ["a malformed request line", "GET /\r\nHost: h\r\n\r\n", 400],
    ["a folded header line", "GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n", 400],
    ["a field name with a space", "GET / HTTP/1.1\r\nBad Name: h\r\n\r\n", 400],
    ["a bad chunk size", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400],
    ["chunk data longer than its size", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n", 400],
  ])("refuses %s", (_, input, status) => {
    const { steps } = run(input);
    expect(refusal(steps)).toMatchObject({ status });
  });

  it("refuses a head over its limit with 431, and reads nothing after a refusal", () => {
    const framer = new RequestFramer({ clientAddress: CLIENT });
    const steps = framer.push(Buffer.from(`GET / HTTP/1.1\r\nX-Big: ${"a".repeat(MAX_HEAD_BYTES)}`));
    expect(refusal(steps)).toMatchObject({ status: 431 });
    expect(framer.push(Buffer.from("\r\n\r\nGET / HTTP/1.1\r\n\r\n"))).toEqual([]);
  });

  it("is idle between requests", () => {
    const framer = new RequestFramer({ clientAddress: CLIENT });
    framer.push(Buffer.from("PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nab"));
    expect(framer.idle).toBe(false);
    framer.push(Buffer.from("cd"));
    expect(framer.idle).toBe(true);
  });
});
