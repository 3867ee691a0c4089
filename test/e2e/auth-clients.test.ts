import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { startDevcluster, type Devcluster } from "../helpers/devcluster.js";
import { ALICE, AUTH_SETTING, ROBOT, basic, failure } from "../helpers/auth-fixture.js";
import { buildImage, layoutManifest, run, skopeoCopy } from "../helpers/images.js";

/**
 * The devcluster with SHOAL_AUTH (accounts with per-repository rules, public/* anonymous), driven
 * by podman and skopeo as users would: log in, push, pull — from the edge and through both agents,
 * which check each client's own pull right even for what their store already holds.
 */
let cluster: Devcluster;
let scratch: string;
let image: { layout: string; tag: string };

beforeAll(async () => {
  cluster = await startDevcluster({ SHOAL_AUTH: JSON.stringify(AUTH_SETTING) });
  scratch = await mkdtemp(path.join(os.tmpdir(), "shoal-auth-e2e-"));
  image = await buildImage({ layers: [300_000] });
});
afterAll(async () => {
  await cluster?.stop();
  await rm(scratch, { recursive: true, force: true });
});

describe("podman and skopeo against the token flow", () => {
  const authFile = () => path.join(scratch, "auth.json");
  const podman = (args: string[]) =>
    run("podman", [`--root=${path.join(scratch, "podman-root")}`, `--runroot=${path.join(scratch, "run")}`, ...args], {
      maxBuffer: 1 << 26,
      env: { ...process.env, REGISTRY_AUTH_FILE: authFile() },
    });

  it("a push without credentials is refused with a readable error; nothing lands", async () => {
    const message = await failure(skopeoCopy(`oci:${image.layout}:${image.tag}`, `docker://${cluster.edgeHost}/public/app:v1`));
    expect(message).toMatch(/unauthorized|authentication required|denied/i);
    const wrong = await failure(skopeoCopy(`oci:${image.layout}:${image.tag}`, `docker://${cluster.edgeHost}/public/app:v1`, ["--dest-creds", "alice:not-the-secret-0123456789"]));
    expect(wrong).toMatch(/unauthorized|invalid credentials/i);
    const tags = await fetch(`${cluster.edgeUrl}/v2/public/app/tags/list`, { headers: { authorization: basic(`alice:${ALICE}`) } });
    expect(tags.status).toBe(404);
  });

  it("podman login rejects a wrong secret and accepts the right one; then push works", async () => {
    await writeFile(authFile(), "{}");
    const bad = await failure(podman(["login", "--tls-verify=false", "-u", "alice", "-p", "wrong-secret-0123456789", cluster.edgeHost]));
    expect(bad).toMatch(/unauthorized|invalid/i);
    await podman(["login", "--tls-verify=false", "-u", "alice", "-p", ALICE, cluster.edgeHost]);
    await skopeoCopy(`oci:${image.layout}:${image.tag}`, `oci-archive:${path.join(scratch, "app.tar")}`);
    await podman(["pull", `oci-archive:${path.join(scratch, "app.tar")}`]);
    const { stdout } = await podman(["images", "-q"]);
    const id = stdout.trim().split("\n")[0]!;
    for (const name of ["public/app:v1", "private/app:v1"]) {
      await podman(["tag", id, `${cluster.edgeHost}/${name}`]);
      await podman(["push", "--tls-verify=false", `${cluster.edgeHost}/${name}`]);
    }
  });

  it("anyone pulls a public repository, from the edge and through both agents", async () => {
    await skopeoCopy(`docker://${cluster.edgeHost}/public/app:v1`, `oci:${path.join(scratch, "direct")}:x`);
    for (const [i, agent] of cluster.agents.entries()) {
      const out = path.join(scratch, `public-via-agent-${i}`);
      await skopeoCopy(`docker://${agent.registryHost}/public/app:v1`, `oci:${out}:x`);
      expect((await layoutManifest(out, "x")).layers).toEqual((await layoutManifest(path.join(scratch, "direct"), "x")).layers);
    }
  });

  it("a private repository is refused without credentials even when the agent holds it, and served with them", async () => {
    const agent = cluster.agents[0]!;
    // alice pulls it through the agent: now its manifest and layers are in the agent's store.
    await skopeoCopy(`docker://${agent.registryHost}/private/app:v1`, `oci:${path.join(scratch, "private-alice")}:x`, ["--src-creds", `alice:${ALICE}`]);
    const { layers } = await layoutManifest(path.join(scratch, "private-alice"), "x");
    const anonymous = await failure(skopeoCopy(`docker://${agent.registryHost}/private/app:v1`, `oci:${path.join(scratch, "private-anon")}:x`));
    expect(anonymous).toMatch(/unauthorized|authentication required|denied/i);
    const robot = await failure(skopeoCopy(`docker://${agent.registryHost}/private/app:v1`, `oci:${path.join(scratch, "private-robot")}:x`, ["--src-creds", `robot:${ROBOT}`]));
    expect(robot).toMatch(/denied|unauthorized/i);
    // The cached blob itself, asked for directly: the agent's challenge sends clients to its own /token.
    const blob = await fetch(`${agent.registry}/v2/private/app/blobs/${layers[0]!.digest}`);
    expect(blob.status).toBe(401);
    expect(blob.headers.get("www-authenticate")).toBe(`Bearer realm="http://${agent.registryHost}/token",service="shoal",scope="repository:private/app:pull"`);
    const denied = await fetch(`${agent.registry}/v2/private/app/blobs/${layers[0]!.digest}`, { headers: { authorization: basic(`robot:${ROBOT}`) } });
    expect(denied.status).toBe(403);
    const tokenRes = await fetch(`${agent.registry}/token?service=shoal&scope=repository:private/app:pull`, { headers: { authorization: basic(`alice:${ALICE}`) } });
    const { token } = (await tokenRes.json()) as { token: string };
    const served = await fetch(`${agent.registry}/v2/private/app/blobs/${layers[0]!.digest}`, { headers: { authorization: `Bearer ${token}` } });
    expect(served.status).toBe(200);
    expect((await served.arrayBuffer()).byteLength).toBeGreaterThan(0);
    // The other agent too, served from its peers or the edge.
    await skopeoCopy(`docker://${cluster.agents[1]!.registryHost}/private/app:v1`, `oci:${path.join(scratch, "private-two")}:x`, ["--src-creds", `alice:${ALICE}`]);
  });

  it("pushes through an agent carry the pusher's own credentials; a robot stays inside team/*", async () => {
    const agent = cluster.agents[0]!;
    const message = await failure(skopeoCopy(`oci:${image.layout}:${image.tag}`, `docker://${agent.registryHost}/team/via-agent:v1`));
    expect(message).toMatch(/unauthorized|authentication required|denied/i);
    await skopeoCopy(`oci:${image.layout}:${image.tag}`, `docker://${agent.registryHost}/team/via-agent:v1`, ["--dest-creds", `robot:${ROBOT}`]);
    const outside = await failure(skopeoCopy(`oci:${image.layout}:${image.tag}`, `docker://${agent.registryHost}/other/x:v1`, ["--dest-creds", `robot:${ROBOT}`]));
    expect(outside).toMatch(/denied|unauthorized|403/i);
    const res = await fetch(`${cluster.edgeUrl}/v2/team/via-agent/tags/list`, { headers: { authorization: basic(`alice:${ALICE}`) } });
    expect(await res.json()).toEqual({ name: "team/via-agent", tags: ["v1"] });
    expect((await fetch(`${cluster.edgeUrl}/v2/other/x/tags/list`, { headers: { authorization: basic(`alice:${ALICE}`) } })).status).toBe(404);
  });
});

describe("fail closed", () => {
  it.each([[{ SHOAL_PUSH_TOKENS: " " }], [{ SHOAL_PUSH_TOKENS: "," }], [{ SHOAL_PULL_AUTH: "true" }], [{ SHOAL_PUSH_TOKENS: "alice:alice-token-0123456789", SHOAL_TOKEN_KEYS: "weak" }]])(
    "the devcluster refuses to start on %j, saying why in one line",
    async (env) => {
      const error = await startDevcluster(env).then(
        async (c) => {
          await c.stop();
          return "started";
        },
        (e: Error) => e.message,
      );
      expect(error.split("\n").filter((line) => line.includes("refusing"))).toHaveLength(1);
      expect(error).toMatch(/refusing to start: invalid edge settings: (SHOAL_PUSH_TOKENS lists no user:token|SHOAL_PULL_AUTH=true needs accounts|SHOAL_TOKEN_KEYS: key 1 is weak)/);
    },
  );
});
