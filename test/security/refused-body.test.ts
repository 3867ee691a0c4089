import { afterAll, beforeAll, describe, expect, it } from "vitest";
import net from "node:net";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { freePort } from "../helpers/devcluster.js";
import { ServiceProcess } from "../helpers/service-process.js";
import { startDenoEdge } from "../helpers/deno-edge.js";

/**
 * A request the edge refuses (here: an unauthenticated chunked PATCH) is answered at once, while
 * the client is still sending: the edge does not wait for a body it will not use (a chunked one used to be read to its end, however long: a slowloris and a bandwidth
 * sink). Both edges, as processes, over raw TCP.
 */
const TOKEN = "a-push-token-of-more-than-16-characters";
const vars = { SHOAL_PUSH_TOKENS: `alice:${TOKEN}` };

interface Seen {
  status?: number;
  answeredMs?: number;
  closedMs?: number;
}

/** Sends the headers and one chunk, then a chunk a second and never the end; notes the answer. */
async function slowChunkedPatch(port: number): Promise<Seen> {
  const socket = net.connect(port, "127.0.0.1");
  socket.on("error", () => undefined);
  await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
  const started = Date.now();
  const seen: Seen = {};
  socket.write("PATCH /v2/slow/blobs/uploads/00000000-0000-4000-8000-000000000000 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n");
  const chunk = `${(64 * 1024).toString(16)}\r\n${"x".repeat(64 * 1024)}\r\n`;
  socket.write(chunk);
  const drip = setInterval(() => socket.writable && socket.write(chunk), 1_000);
  let text = "";
  socket.on("data", (d: Buffer) => {
    text += d.toString("latin1");
    const status = /^HTTP\/1\.1 (\d{3})/.exec(text);
    if (status && seen.status === undefined) {
      seen.status = Number(status[1]);
      seen.answeredMs = Date.now() - started;
    }
  });
  await new Promise<void>((resolve) => {
    socket.once("close", () => {
      seen.closedMs = Date.now() - started;
      resolve();
    });
    setTimeout(resolve, 12_000);
  });
  clearInterval(drip);
  socket.destroy();
  return seen;
}

let home: string;
beforeAll(async () => {
  home = await mkdtemp(path.join(os.tmpdir(), "shoal-refused-body-"));
});
afterAll(async () => {
  await rm(home, { recursive: true, force: true });
});

describe.each([
  ["the miniflare edge", async () => {
    // As startEdgeProcess, but up once it answers at all: with push tokens, GET /v2/ is a 401.
    const port = await freePort();
    const service = await ServiceProcess.start({
      command: process.execPath,
      args: ["--import", "tsx", "src/devcluster/edge-main.ts"],
      env: { SHOAL_HOME: path.join(home, "miniflare"), SHOAL_EDGE_PORT: String(port), ...vars },
      readyUrl: `http://127.0.0.1:${port}/v2/`,
      anyAnswer: true,
    });
    return { port, stop: () => service.stop() };
  }],
  ["the Deno edge", async () => {
    const edge = await startDenoEdge(path.join(home, "deno"), vars);
    return { port: edge.port, stop: () => edge.service.stop() };
  }],
])("%s", (_name, start) => {
  let edge: { port: number; stop: () => Promise<void> };
  beforeAll(async () => {
    edge = await start();
  });
  afterAll(async () => {
    await edge?.stop();
  });

  it("answers an unauthenticated chunked PATCH at once, while its body is still coming", async () => {
    const seen = await slowChunkedPatch(edge.port);
    expect(seen.status).toBe(401);
    // While the client is still sending (a chunk a second, never the end).
    expect(seen.answeredMs).toBeLessThan(3_000);
    expect(seen.closedMs === undefined || seen.closedMs > seen.answeredMs!).toBe(true);
  });
});
