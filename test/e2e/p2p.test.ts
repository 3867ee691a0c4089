import { afterAll, describe, expect, it } from "vitest";
import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { buildImage, layoutManifest, skopeoCopy } from "../helpers/images.js";
import { freePorts, startDevcluster, type Devcluster } from "../helpers/devcluster.js";
import { startAgentProcess, startEdgeProcess, type AgentHandle } from "../helpers/processes.js";
import { pushBlobChunked } from "../helpers/registry-client.js";
import { FakePeer } from "../helpers/fake-peer.js";
import { MetainfoSchema } from "../../src/shared/p2p/metainfo.js";
import { WIRE_ERROR } from "../../src/shared/p2p/wire/frames.js";

/** Agents feed each other: real agent processes over real TCP, the edge as tracker and web seed. */
const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
});

async function metric(admin: string, name: string, labels = ""): Promise<number> {
  const text = await (await fetch(`${admin}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name}${labels} `));
  return line ? Number(line.split(" ").pop()) : 0;
}

async function fileDigest(file: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return `sha256:${hash.digest("hex")}`;
}

describe("in the devcluster", () => {
  let cluster: Devcluster;

  it("agent two pulls an image agent one has with at least 90% of the bytes from agent one", async () => {
    cluster = await startDevcluster();
    cleanups.push(() => cluster.stop());
    const { layout, tag } = await buildImage({ layers: [40 * 1024 * 1024, 3 * 1024 * 1024] });
    const layers = (await layoutManifest(layout, tag)).layers.map((l) => l.digest);
    await skopeoCopy(`oci:${layout}:${tag}`, `docker://${cluster.edgeHost}/p2p/app:v1`);
    const [one, two] = cluster.agents as [Devcluster["agents"][0], Devcluster["agents"][0]];

    await skopeoCopy(`docker://${one.registryHost}/p2p/app:v1`, `oci:${path.join(cluster.home, "pull-one")}:p`);
    const out = path.join(cluster.home, "pull-two");
    await skopeoCopy(`docker://${two.registryHost}/p2p/app:v1`, `oci:${out}:p`, ["--preserve-digests"]);

    const pulled = await layoutManifest(out, "p");
    expect(pulled.layers.map((l) => l.digest)).toEqual(layers);
    for (const l of pulled.layers) expect(await fileDigest(path.join(out, "blobs/sha256", l.digest.slice(7)))).toBe(l.digest);
    const fromPeer = await metric(two.admin, "shoal_agent_bytes_downloaded_total", '{source="peer"}');
    const fromEdge = await metric(two.admin, "shoal_agent_bytes_downloaded_total", '{source="origin"}');
    console.log(`agent two: ${fromPeer} bytes from agent one, ${fromEdge} from the edge`);
    expect(fromPeer / (fromPeer + fromEdge)).toBeGreaterThanOrEqual(0.9);
    expect(await metric(one.admin, "shoal_agent_bytes_uploaded_total")).toBeGreaterThanOrEqual(fromPeer);
    // The image config (a few hundred bytes) came from the edge in one request, the layers through their swarms.
    expect(await metric(two.admin, "shoal_agent_edge_fetches_total", '{kind="blob"}')).toBe(1);
  });
});

describe("a swarm of agents pulling one blob at once", () => {
  const AGENTS = Number(process.env.SHOAL_TEST_SWARM_AGENTS ?? 8);
  const BLOB_BYTES = Number(process.env.SHOAL_TEST_SWARM_BYTES ?? 128 * 1024 * 1024);

  // 30% of the agents are killed mid-transfer (3 of 8): the others complete.
  const VICTIMS = Math.ceil(AGENTS * 0.3);

  it(`${AGENTS} agents, ${BLOB_BYTES / 2 ** 20} MiB, with a corrupt peer, a garbage peer and ${VICTIMS} agents killed mid-transfer`, async () => {
    const home = await mkdtemp(path.join(os.tmpdir(), "shoal-swarm-"));
    cleanups.push(() => rm(home, { recursive: true, force: true }));
    const edge = await startEdgeProcess(home);
    cleanups.push(() => edge.proc.stop());
    const blob = randomBytes(BLOB_BYTES);
    const digest = await pushBlobChunked(edge.url, "swarm/blob", blob, 64 * 1024 * 1024);
    const metainfo = MetainfoSchema.parse(await (await fetch(`${edge.url}/shoal/v1/swarm/blob/metainfo/${digest}`)).json());

    const corrupt = await new FakePeer("corrupt", metainfo).start(edge.url);
    const garbage = await new FakePeer("garbage", metainfo).start(edge.url);
    cleanups.push(() => corrupt.stop(), () => garbage.stop());

    const ports = await freePorts(3 * AGENTS);
    const agents: AgentHandle[] = await Promise.all(
      Array.from({ length: AGENTS }, (_, i) => startAgentProcess(edge.url, { ports: ports.slice(3 * i, 3 * i + 3) as [number, number, number] })),
    );
    cleanups.push(...agents.map((a) => () => a.proc.stop()));
    const victims = agents.slice(AGENTS - VICTIMS);
    const survivors = agents.slice(0, AGENTS - VICTIMS);

    const started = Date.now();
    const pull = async (agent: AgentHandle) => {
      const res = await fetch(`${agent.registry}/v2/swarm/blob/blobs/${digest}`);
      const hash = createHash("sha256");
      for await (const chunk of res.body!) hash.update(chunk);
      return { status: res.status, digest: `sha256:${hash.digest("hex")}`, seconds: (Date.now() - started) / 1000 };
    };
    // The first agent starts alone: the hostile peers are the only seeders it is handed, so it
    // surely dials both and asks the corrupt one for pieces (contact is certain, not luck).
    const first = pull(agents[0]!);
    const contactBy = Date.now() + 60_000;
    while ((corrupt.requestsAnswered === 0 || garbage.connections === 0) && Date.now() < contactBy) await new Promise((r) => setTimeout(r, 50));
    const pulls = [first, ...agents.slice(1).map(pull)];
    // Kill each victim once it is part-way through (it has fetched, and so serves, something).
    const killed = Promise.all(
      victims.map(async (victim) => {
        const deadline = Date.now() + 60_000;
        while (Date.now() < deadline) {
          const fetched = (await victim.metric("shoal_agent_bytes_downloaded_total", '{source="peer"}')) + (await victim.metric("shoal_agent_bytes_downloaded_total", '{source="origin"}'));
          if (fetched > 0) break;
          await new Promise((r) => setTimeout(r, 50));
        }
        await victim.proc.stop("SIGKILL");
      }),
    );

    const results = await Promise.allSettled(pulls);
    await killed;
    for (const result of results.slice(0, AGENTS - VICTIMS)) {
      expect(result.status).toBe("fulfilled");
      if (result.status === "fulfilled") {
        expect(result.value.status).toBe(200);
        expect(result.value.digest).toBe(digest);
      }
    }

    let peer = 0;
    let origin = 0;
    let rejected = 0;
    for (const agent of survivors) {
      peer += await agent.metric("shoal_agent_bytes_downloaded_total", '{source="peer"}');
      origin += await agent.metric("shoal_agent_bytes_downloaded_total", '{source="origin"}');
      rejected += await agent.metric("shoal_agent_pieces_rejected_total");
    }
    const times = results.slice(0, AGENTS - VICTIMS).map((r) => (r.status === "fulfilled" ? r.value.seconds : NaN));
    console.log(
      `${survivors.length} agents done (${VICTIMS} killed) in ${Math.max(...times).toFixed(1)} s; bytes from peers ${peer}, from the edge ${origin} ` +
        `(${(origin / BLOB_BYTES).toFixed(2)} copies); pieces rejected ${rejected}; corrupt peer answered ${corrupt.requestsAnswered} requests`,
    );
    // Peers did the work; the corrupt peer was caught and banned, the garbage peer refused.
    expect(peer).toBeGreaterThan(origin);
    expect(corrupt.requestsAnswered).toBeGreaterThan(0);
    expect(rejected).toBeGreaterThan(0);
    expect(corrupt.errors.some((e) => e.code === WIRE_ERROR.BANNED)).toBe(true);
    expect(garbage.connections).toBeGreaterThan(0);
    expect(garbage.errors.some((e) => e.code === WIRE_ERROR.PROTOCOL)).toBe(true);
    for (const agent of survivors) expect((await fetch(`${agent.admin}/health`)).status).toBe(200);
  });
});
