import { afterAll, beforeAll, describe, expect, it } from "vitest";
import http from "node:http";
import net from "node:net";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { startAgentProcess, startEdgeProcess, type AgentHandle } from "../helpers/processes.js";
import { pushBlob } from "../helpers/registry-client.js";

/**
 * A web page shown by a browser on the agent's host must not read the agent's registry port
 * (DNS rebinding: the page's name resolves to 127.0.0.1, the request carries that name in Host)
 * nor act on its admin port (CSRF: a cross-site POST, text/plain so that no preflight is asked).
 * Registry clients, which send no Origin, work as before. A real agent process, raw HTTP requests
 * with the headers a browser sends.
 */
let home: string;
let edge: Awaited<ReturnType<typeof startEdgeProcess>>;
let agent: AgentHandle;
let digest: string;

interface Answer {
  status: number;
  body: string;
}

function request(base: string, method: string, pathname: string, headers: Record<string, string>, body?: string): Promise<Answer> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, method, path: pathname, headers, setHost: !("host" in headers) }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (text += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

const portOf = (base: string) => new URL(base).port;

beforeAll(async () => {
  home = await mkdtemp(path.join(os.tmpdir(), "shoal-localhost-"));
  edge = await startEdgeProcess(home);
  digest = await pushBlob(edge.url, "local/blob", "some bytes a web page should not read");
  agent = await startAgentProcess(edge.url);
});
afterAll(async () => {
  await agent?.proc.stop();
  await edge?.proc.stop();
  await rm(home, { recursive: true, force: true });
});

describe("the registry port", () => {
  it("answers registry clients by IP, localhost or the machine's name", async () => {
    for (const host of [`127.0.0.1:${portOf(agent.registry)}`, `localhost:${portOf(agent.registry)}`, `${os.hostname()}:${portOf(agent.registry)}`, "[::1]"]) {
      const res = await request(agent.registry, "GET", `/v2/local/blob/blobs/${digest}`, { host });
      expect(res.status, host).toBe(200);
    }
  });

  it("refuses a request whose Host is another name (DNS rebinding) before fetching anything", async () => {
    const res = await request(agent.registry, "GET", `/v2/local/blob/blobs/${digest}`, { host: `rebound.attacker.example:${portOf(agent.registry)}` });
    expect(res.status).toBe(403);
    expect(JSON.parse(res.body).errors[0].code).toBe("DENIED");
    expect(res.body).not.toContain("some bytes");
  });

  it("refuses requests a page on another origin sends", async () => {
    const host = `127.0.0.1:${portOf(agent.registry)}`;
    const browsers: Record<string, string>[] = [{ origin: "http://attacker.example" }, { origin: "null" }, { "sec-fetch-site": "cross-site" }, { origin: "http://127.0.0.1:8080" }];
    for (const headers of browsers) {
      const res = await request(agent.registry, "GET", `/v2/local/blob/blobs/${digest}`, { host, ...headers });
      expect(res.status, JSON.stringify(headers)).toBe(403);
    }
    // The agent's own origin is fine.
    expect((await request(agent.registry, "GET", `/v2/local/blob/blobs/${digest}`, { host, origin: `http://${host}`, "sec-fetch-site": "same-origin" })).status).toBe(200);
  });
});

describe("the admin port", () => {
  const verify = (headers: Record<string, string>) => request(agent.admin, "POST", "/v1/store/verify", headers, JSON.stringify({ digest }));

  it("refuses a cross-site POST (CSRF), whatever its content type", async () => {
    const host = `127.0.0.1:${portOf(agent.admin)}`;
    expect((await verify({ host, origin: "http://attacker.example", "content-type": "text/plain" })).status).toBe(403);
    expect((await verify({ host, "sec-fetch-site": "cross-site", "content-type": "application/json" })).status).toBe(403);
    expect((await request(agent.admin, "GET", "/v1/status", { host: `rebound.attacker.example:${portOf(agent.admin)}` })).status).toBe(403);
  });

  it("takes actions only as application/json, which no page can send across origins without asking", async () => {
    const host = `127.0.0.1:${portOf(agent.admin)}`;
    const plain = await verify({ host, "content-type": "text/plain;charset=UTF-8" });
    expect(plain.status).toBe(415);
    const json = await verify({ host, "content-type": "application/json" });
    expect([200, 404]).toContain(json.status);
    expect(json.body).toContain(digest.slice(7, 20));
  });
});

describe("the registry port's timeouts", () => {
  it("closes a connection that never finishes its headers", async () => {
    const socket = net.connect(Number(portOf(agent.registry)), "127.0.0.1");
    socket.on("error", () => undefined);
    socket.resume(); // read what comes (a 408), or the close is never seen
    await new Promise<void>((resolve) => socket.once("connect", resolve));
    socket.write("GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    const started = Date.now();
    const closedAfter = await new Promise<number>((resolve) => {
      socket.once("close", () => resolve(Date.now() - started));
      setTimeout(() => resolve(Number.POSITIVE_INFINITY), 20_000);
    });
    socket.destroy();
    expect(closedAfter).toBeLessThan(20_000);
  });
});
