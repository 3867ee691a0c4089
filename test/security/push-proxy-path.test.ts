import { afterAll, beforeAll, describe, expect, it } from "vitest";
import http from "node:http";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { startAgentProcess, startEdgeProcess, type AgentHandle } from "../helpers/processes.js";
import { pushImage } from "../helpers/registry-client.js";

/**
 * What the agent passes on to the edge (listings, pushes) is the path it routed, not the raw
 * `req.url`. The agent decodes the whole path before it routes (`tags%2Flist` is `tags/list` to it,
 * one segment `tags%2Flist` to the edge) and reads `//host/v2/...` as a path after a host; passed on
 * raw, such a request meant another route at the edge than the one the agent chose. A real edge and
 * agent, requests with raw paths.
 */
let home: string;
let edge: Awaited<ReturnType<typeof startEdgeProcess>>;
let agent: AgentHandle;

function request(base: string, method: string, rawPath: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, method, path: rawPath, headers: { "content-length": "0" } }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

const tagsOf = (body: string) => (JSON.parse(body) as { name: string; tags: string[] });

beforeAll(async () => {
  home = await mkdtemp(path.join(os.tmpdir(), "shoal-push-path-"));
  edge = await startEdgeProcess(home);
  await pushImage(edge.url, "proxy/app", "v1");
  await pushImage(edge.url, "proxy/app", "v2");
  agent = await startAgentProcess(edge.url);
});
afterAll(async () => {
  await agent?.proc.stop();
  await edge?.proc.stop();
  await rm(home, { recursive: true, force: true });
});

describe("the agent's requests to the edge", () => {
  it("are the route the agent matched, whatever the raw path's encoding", async () => {
    // Each of these was a 404 from the edge, the raw path being no route there.
    for (const raw of ["/v2/proxy/app/tags%2Flist", "/v2%2Fproxy%2Fapp%2Ftags%2Flist", "//elsewhere.example/v2/proxy/app/tags/list"]) {
      const res = await request(agent.registry, "GET", raw);
      expect(res.status, `${raw}: ${res.body}`).toBe(200);
      expect(tagsOf(res.body)).toEqual({ name: "proxy/app", tags: ["v1", "v2"] });
    }
  });

  it("name the repository the agent routed when the client encodes its slash (%2F)", async () => {
    const res = await request(agent.registry, "GET", "/v2/proxy%2Fapp/tags/list");
    expect(res.status, res.body).toBe(200);
    expect(tagsOf(res.body)).toEqual({ name: "proxy/app", tags: ["v1", "v2"] });
  });

  it("start an upload in that repository, and its Location is the edge's own", async () => {
    const res = await request(agent.registry, "POST", "/v2/proxy%2Fapp/blobs/uploads/");
    expect(res.status, res.body).toBe(202);
    expect(res.headers.location).toMatch(/^\/v2\/proxy\/app\/blobs\/uploads\/[^/]+$/);
  });

  it("have dot segments resolved as the agent resolved them", async () => {
    const res = await request(agent.registry, "GET", "/v2/other/../proxy/app/tags/list");
    expect(res.status, res.body).toBe(200);
    expect(tagsOf(res.body).name).toBe("proxy/app");
  });

  it("keep the query (tag paging)", async () => {
    const res = await request(agent.registry, "GET", "/v2/proxy%2Fapp/tags/list?n=1");
    expect(res.status, res.body).toBe(200);
    expect(tagsOf(res.body).tags).toEqual(["v1"]);
    expect(res.headers.link).toMatch(/n=1/);
  });

  it("are refused for a name the agent would not route (double slash), without reaching the edge", async () => {
    const res = await request(agent.registry, "GET", "/v2/proxy//app/tags/list");
    expect(res.status).toBe(400);
    expect(res.body).toMatch(/NAME_INVALID/);
  });
});
