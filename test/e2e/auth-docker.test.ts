import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { sign } from "hono/jwt";
import { startDevcluster, type Devcluster } from "../helpers/devcluster.js";
import { ALICE, AUTH_SETTING, ROBOT, basic, failure } from "../helpers/auth-fixture.js";
import { startDockerd, type Dockerd } from "../helpers/dockerd.js";
import { run } from "../helpers/images.js";

/**
 * A real Docker engine (Debian's docker.io) against the devcluster with SHOAL_AUTH: docker pings
 * `/v2/`, follows the Bearer challenge to `/token` (anonymously until `docker login`), pushes a
 * layer as one chunked PATCH without Content-Length — to the edge and through an agent.
 */
const KEY = "devcluster-test-key-4f9a1c7e3b5d2a8e6c0f";
let cluster: Devcluster;
let engine: Dockerd;
let edge: string;
let one: string;
let two: string;

beforeAll(async () => {
  [cluster, engine] = await Promise.all([startDevcluster({ SHOAL_AUTH: JSON.stringify(AUTH_SETTING), SHOAL_TOKEN_KEYS: KEY }), startDockerd()]);
  edge = cluster.edgeHost;
  one = cluster.agents[0]!.registryHost;
  two = cluster.agents[1]!.registryHost;
  // A one-layer image from a small tarball (no registry is reachable from here).
  const files = path.join(engine.dir, "rootfs");
  await mkdir(files, { recursive: true });
  await writeFile(path.join(files, "hello.txt"), `hello from shoal ${"x".repeat(200_000)}\n`);
  await run("tar", ["-C", files, "-cf", path.join(engine.dir, "rootfs.tar"), "."]);
  await engine.docker(["import", path.join(engine.dir, "rootfs.tar"), "shoal-test/base:1"]);
}, 120_000);
afterAll(async () => {
  await Promise.all([cluster?.stop(), engine?.stop()]);
});

const login = (host: string, user: string, secret: string) => engine.docker(["login", "-u", user, "--password-stdin", host], { input: secret });
const tagAndPush = async (ref: string) => {
  await engine.docker(["tag", "shoal-test/base:1", ref]);
  return engine.docker(["push", ref]);
};
const forget = (ref: string) => engine.docker(["rmi", "-f", ref]).catch(() => undefined);

describe("docker and the token flow", () => {
  it("refuses a push before docker login, to the edge and through an agent", async () => {
    expect(await failure(tagAndPush(`${edge}/public/base:1`))).toMatch(/unauthorized|denied|authentication required/i);
    expect(await failure(tagAndPush(`${one}/team/app:1`))).toMatch(/unauthorized|denied|authentication required/i);
  });

  it("pushes after docker login, to the edge and through an agent (chunked PATCH)", async () => {
    await login(edge, "alice", ALICE);
    await tagAndPush(`${edge}/public/base:1`);
    await tagAndPush(`${edge}/private/app:1`);
    await login(one, "robot", ROBOT);
    await tagAndPush(`${one}/team/app:1`);
    const tags = await fetch(`${cluster.edgeUrl}/v2/team/app/tags/list`, { headers: { authorization: basic(`alice:${ALICE}`) } });
    expect(await tags.json()).toEqual({ name: "team/app", tags: ["1"] });
  });

  it("a robot with push on team/* cannot push other/x", async () => {
    expect(await failure(tagAndPush(`${one}/other/x:1`))).toMatch(/denied|unauthorized|forbidden/i);
    expect((await fetch(`${cluster.edgeUrl}/v2/other/x/tags/list`, { headers: { authorization: basic(`alice:${ALICE}`) } })).status).toBe(404);
  });

  it("pulls a public repository anonymously from the edge and both agents", async () => {
    await engine.docker(["logout", edge]);
    await engine.docker(["logout", one]);
    for (const host of [edge, one, two]) {
      await forget(`${host}/public/base:1`);
      await engine.docker(["pull", `${host}/public/base:1`]);
    }
  });

  it("refuses a private repository without credentials even when the agent holds it; serves it after login", async () => {
    await login(two, "alice", ALICE);
    await engine.docker(["pull", `${two}/private/app:1`]);
    await engine.docker(["logout", two]);
    await forget(`${two}/private/app:1`);
    expect(await failure(engine.docker(["pull", `${two}/private/app:1`]))).toMatch(/unauthorized|denied|authentication required|not found/i);
    await login(two, "robot", ROBOT);
    expect(await failure(engine.docker(["pull", `${two}/private/app:1`]))).toMatch(/unauthorized|denied|forbidden/i);
    await login(two, "alice", ALICE);
    await engine.docker(["pull", `${two}/private/app:1`]);
  });

  it("refuses an expired token at the edge and at the agents", async () => {
    const now = Math.floor(Date.now() / 1000);
    const access = [{ type: "repository", name: "private/app", actions: ["pull"] }];
    const expired = await sign({ iss: "shoal", aud: "shoal", sub: "alice", iat: now - 600, exp: now - 1, access }, KEY, "HS256");
    const fresh = await sign({ iss: "shoal", aud: "shoal", sub: "alice", iat: now, exp: now + 300, access }, KEY, "HS256");
    for (const base of [cluster.edgeUrl, cluster.agents[0]!.registry, cluster.agents[1]!.registry]) {
      const res = await fetch(`${base}/v2/private/app/manifests/1`, { headers: { authorization: `Bearer ${expired}` } });
      expect(res.status, base).toBe(401);
      expect(res.headers.get("www-authenticate"), base).toContain('error="invalid_token"');
      expect((await fetch(`${base}/v2/private/app/manifests/1`, { headers: { authorization: `Bearer ${fresh}` } })).status, base).toBe(200);
    }
  });
});
