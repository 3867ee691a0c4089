import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { startDevcluster, type Devcluster } from "../helpers/devcluster.js";
import { buildImage, layoutManifest, run, skopeoCopy } from "../helpers/images.js";

/**
 * The devcluster with push and pull authentication on (SHOAL_PUSH_TOKENS, SHOAL_PULL_AUTH), driven
 * by podman and skopeo as a user would: log in, push, pull; the agents pull with their own token.
 */
const TOKEN = "s3cret-token-for-alice-0123456789";
let cluster: Devcluster;
let scratch: string;
let image: { layout: string; tag: string };

beforeAll(async () => {
  cluster = await startDevcluster({ SHOAL_PUSH_TOKENS: `alice:${TOKEN}`, SHOAL_PULL_AUTH: "true" });
  scratch = await mkdtemp(path.join(os.tmpdir(), "shoal-auth-e2e-"));
  image = await buildImage({ layers: [300_000] });
});
afterAll(async () => {
  await cluster?.stop();
  await rm(scratch, { recursive: true, force: true });
});

const failure = async (promise: Promise<unknown>): Promise<string> => {
  try {
    await promise;
  } catch (error) {
    return String((error as { stderr?: string }).stderr ?? error);
  }
  throw new Error("expected the command to fail");
};

describe("podman and skopeo with credentials", () => {
  const authFile = () => path.join(scratch, "auth.json");
  const podman = (args: string[]) =>
    run("podman", [`--root=${path.join(scratch, "podman-root")}`, `--runroot=${path.join(scratch, "run")}`, ...args], {
      maxBuffer: 1 << 26,
      env: { ...process.env, REGISTRY_AUTH_FILE: authFile() },
    });

  it("a push without credentials is refused with a readable error; nothing lands", async () => {
    const message = await failure(skopeoCopy(`oci:${image.layout}:${image.tag}`, `docker://${cluster.edgeHost}/sec/app:v1`));
    // skopeo asks for a token (anonymous: pull only) and reads the HEAD's refusal as "denied".
    expect(message).toMatch(/unauthorized|authentication required|denied/i);
    const wrong = await failure(skopeoCopy(`oci:${image.layout}:${image.tag}`, `docker://${cluster.edgeHost}/sec/app:v1`, ["--dest-creds", "alice:not-the-token-0123456789"]));
    expect(wrong).toMatch(/unauthorized|invalid credentials/i);
    const tags = await fetch(`${cluster.edgeUrl}/v2/sec/app/tags/list`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(tags.status).toBe(404);
  });

  it("podman login rejects a wrong token and accepts the right one; then push and pull work", async () => {
    await writeFile(authFile(), "{}");
    const bad = await failure(podman(["login", "--tls-verify=false", "-u", "alice", "-p", "wrong-token-0123456789", cluster.edgeHost]));
    expect(bad).toMatch(/unauthorized|invalid/i);
    await podman(["login", "--tls-verify=false", "-u", "alice", "-p", TOKEN, cluster.edgeHost]);
    await skopeoCopy(`oci:${image.layout}:${image.tag}`, `oci-archive:${path.join(scratch, "app.tar")}`);
    await podman(["pull", `oci-archive:${path.join(scratch, "app.tar")}`]);
    const { stdout } = await podman(["images", "-q"]);
    const id = stdout.trim().split("\n")[0]!;
    await podman(["tag", id, `${cluster.edgeHost}/sec/app:v1`]);
    await podman(["push", "--tls-verify=false", `${cluster.edgeHost}/sec/app:v1`]);
    await podman(["rmi", "-a", "-f"]);
    await podman(["pull", "--tls-verify=false", `${cluster.edgeHost}/sec/app:v1`]);
  });

  it("pulls from the edge need credentials; pulls through an agent use the agent's", async () => {
    const anonymous = await failure(skopeoCopy(`docker://${cluster.edgeHost}/sec/app:v1`, `oci:${path.join(scratch, "anon")}:x`));
    expect(anonymous).toMatch(/unauthorized|authentication required/i);
    await skopeoCopy(`docker://${cluster.edgeHost}/sec/app:v1`, `oci:${path.join(scratch, "direct")}:x`, ["--src-creds", `alice:${TOKEN}`]);
    for (const [i, agent] of cluster.agents.entries()) {
      const out = path.join(scratch, `via-agent-${i}`);
      await skopeoCopy(`docker://${agent.registryHost}/sec/app:v1`, `oci:${out}:x`);
      expect((await layoutManifest(out, "x")).layers).toEqual((await layoutManifest(path.join(scratch, "direct"), "x")).layers);
    }
  });

  it("a push through an agent needs the pusher's own credentials, not the agent's", async () => {
    const agent = cluster.agents[0]!;
    const message = await failure(skopeoCopy(`oci:${image.layout}:${image.tag}`, `docker://${agent.registryHost}/sec/via-agent:v1`));
    expect(message).toMatch(/unauthorized|authentication required/i);
    await skopeoCopy(`oci:${image.layout}:${image.tag}`, `docker://${agent.registryHost}/sec/via-agent:v1`, ["--dest-creds", `alice:${TOKEN}`]);
    const res = await fetch(`${cluster.edgeUrl}/v2/sec/via-agent/tags/list`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(await res.json()).toEqual({ name: "sec/via-agent", tags: ["v1"] });
  });
});
