import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestEdge, type TestEdge } from "../helpers/edge.js";
import { byteLength, pushBlob, pushManifest, sha256, startUpload } from "../helpers/registry-client.js";
import { blobDigests, runGc, storedKeys } from "../helpers/gc.js";

const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
const LAYER = "application/vnd.oci.image.layer.v1.tar";

/** A manifest as the test pushed it, and what it points at. */
interface Pushed {
  digest: string;
  text: string;
  mediaType: string;
  blobs: string[];
  children: string[];
  subject?: string;
}
interface RepoModel {
  tags: Map<string, string>;
  manifests: Map<string, Pushed>;
}

/** xorshift32: the same interleaving for the same seed. */
function random(seed: number): (n: number) => number {
  let x = seed || 1;
  return (n) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % n;
  };
}

/** Live manifests of a repository, by the rules the collector documents (retention: untagged 0 days). */
function liveManifests(repo: RepoModel): Set<string> {
  const live = new Set<string>();
  const visit = (d: string) => {
    if (!repo.manifests.has(d) || live.has(d)) return;
    live.add(d);
    const m = repo.manifests.get(d)!;
    m.children.forEach(visit);
    for (const r of repo.manifests.values()) if (r.subject === d) visit(r.digest);
  };
  for (const d of repo.tags.values()) visit(d);
  return live;
}

let edge: TestEdge;
beforeAll(async () => {
  edge = await startTestEdge({ SHOAL_GC_GRACE_SECONDS: "0", SHOAL_GC_RETENTION: JSON.stringify({ "": { untaggedDays: 0 } }) });
});
afterAll(async () => edge?.destroy());

describe("garbage collection, randomized", () => {
  it("interleaves pushes, tag moves, deletes, aborted uploads and runs; after each run every live tag pulls and nothing unreachable is stored", async () => {
    const url = edge.url;
    const rand = random(Number(process.env.SHOAL_GC_SEED ?? 20261201));
    const names = ["gc/a", "gc/b", "gc/c"];
    const repos = new Map<string, RepoModel>(names.map((n) => [n, { tags: new Map(), manifests: new Map() }]));
    const openUploads: { name: string; location: string; data: string }[] = [];
    let serial = 0;

    const pushImage = async (name: string, reference: string | null): Promise<Pushed> => {
      const config = JSON.stringify({ architecture: "amd64", os: "linux", n: rand(6) });
      const layers = Array.from({ length: 1 + rand(2) }, () => `layer-${rand(14)}`);
      const configDigest = await pushBlob(url, name, config);
      const layerDigests: string[] = [];
      for (const layer of layers) layerDigests.push(await pushBlob(url, name, layer));
      const manifest = {
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: configDigest, size: byteLength(config) },
        layers: layers.map((l, i) => ({ mediaType: LAYER, digest: layerDigests[i]!, size: byteLength(l) })),
        annotations: { serial: String(serial++) },
      };
      const text = JSON.stringify(manifest);
      const res = await pushManifest(url, name, reference ?? sha256(text), manifest, OCI_MANIFEST);
      expect(res.status, await res.clone().text()).toBe(201);
      const pushed: Pushed = { digest: sha256(text), text, mediaType: OCI_MANIFEST, blobs: [configDigest, ...layerDigests], children: [] };
      repos.get(name)!.manifests.set(pushed.digest, pushed);
      if (reference) repos.get(name)!.tags.set(reference, pushed.digest);
      return pushed;
    };

    const actions: Record<string, () => Promise<void>> = {
      async image() {
        await pushImage(names[rand(3)]!, rand(4) === 0 ? null : `t${rand(4)}`);
      },
      async index() {
        const name = names[rand(3)]!;
        const children = [await pushImage(name, null), await pushImage(name, null)];
        const index = { schemaVersion: 2, mediaType: OCI_INDEX, manifests: children.map((c) => ({ mediaType: c.mediaType, digest: c.digest, size: byteLength(c.text) })) };
        const text = JSON.stringify(index);
        const tag = `i${rand(2)}`;
        expect((await pushManifest(url, name, tag, index, OCI_INDEX)).status).toBe(201);
        const repo = repos.get(name)!;
        repo.manifests.set(sha256(text), { digest: sha256(text), text, mediaType: OCI_INDEX, blobs: [], children: children.map((c) => c.digest) });
        repo.tags.set(tag, sha256(text));
      },
      async referrer() {
        const name = names[rand(3)]!;
        const repo = repos.get(name)!;
        const targets = [...repo.manifests.values()];
        if (targets.length === 0) return;
        const target = targets[rand(targets.length)]!;
        const config = await pushBlob(url, name, "{}");
        const sig = await pushBlob(url, name, `signature-${rand(5)}`);
        const manifest = {
          schemaVersion: 2,
          mediaType: OCI_MANIFEST,
          artifactType: "application/vnd.example.signature",
          config: { mediaType: "application/vnd.oci.empty.v1+json", digest: config, size: 2 },
          layers: [{ mediaType: "application/octet-stream", digest: sig, size: byteLength(`signature-0`) }],
          subject: { mediaType: target.mediaType, digest: target.digest, size: byteLength(target.text) },
        };
        const text = JSON.stringify(manifest);
        expect((await pushManifest(url, name, sha256(text), manifest, OCI_MANIFEST)).status).toBe(201);
        repo.manifests.set(sha256(text), { digest: sha256(text), text, mediaType: OCI_MANIFEST, blobs: [config, sig], children: [], subject: target.digest });
      },
      async deleteManifest() {
        const repo = repos.get(names[rand(3)]!)!;
        const all = [...repo.manifests.keys()];
        if (all.length === 0) return;
        const digest = all[rand(all.length)]!;
        const name = names.find((n) => repos.get(n) === repo)!;
        expect((await fetch(`${url}/v2/${name}/manifests/${digest}`, { method: "DELETE" })).status).toBe(202);
        repo.manifests.delete(digest);
        for (const [tag, d] of repo.tags) if (d === digest) repo.tags.delete(tag);
      },
      async deleteTag() {
        const name = names[rand(3)]!;
        const repo = repos.get(name)!;
        const tags = [...repo.tags.keys()];
        if (tags.length === 0) return;
        const tag = tags[rand(tags.length)]!;
        expect((await fetch(`${url}/v2/${name}/manifests/${tag}`, { method: "DELETE" })).status).toBe(202);
        repo.tags.delete(tag);
      },
      async orphanBlob() {
        await pushBlob(url, names[rand(3)]!, `orphan-${rand(8)}`);
      },
      async abortedUpload() {
        const name = names[rand(3)]!;
        const location = await startUpload(url, name);
        const data = `partial-${serial++}`;
        const patch = await fetch(location, { method: "PATCH", body: data, headers: { "Content-Type": "application/octet-stream" } });
        expect(patch.status).toBe(202);
        const next = new URL(patch.headers.get("Location")!, url).toString();
        if (rand(2) === 0) expect((await fetch(next, { method: "DELETE" })).status).toBe(204);
        else openUploads.push({ name, location: next, data }); // left open across runs, finished later
      },
      async finishUpload() {
        const open = openUploads.shift();
        if (!open) return;
        const put = new URL(open.location);
        put.searchParams.set("digest", sha256(open.data));
        expect((await fetch(put, { method: "PUT" })).status).toBe(201);
        // The finished blob is used at once by a manifest, as a push would.
        const config = await pushBlob(url, open.name, "{}");
        const manifest = {
          schemaVersion: 2,
          mediaType: OCI_MANIFEST,
          config: { mediaType: "application/vnd.oci.empty.v1+json", digest: config, size: 2 },
          layers: [{ mediaType: LAYER, digest: sha256(open.data), size: byteLength(open.data) }],
        };
        const text = JSON.stringify(manifest);
        const tag = `u${rand(3)}`;
        expect((await pushManifest(url, open.name, tag, manifest, OCI_MANIFEST)).status).toBe(201);
        const repo = repos.get(open.name)!;
        repo.manifests.set(sha256(text), { digest: sha256(text), text, mediaType: OCI_MANIFEST, blobs: [config, sha256(open.data)], children: [] });
        repo.tags.set(tag, sha256(text));
      },
    };
    const weighted = ["image", "image", "image", "index", "referrer", "deleteManifest", "deleteTag", "orphanBlob", "abortedUpload", "finishUpload"];

    const verify = async () => {
      const reachable = new Set<string>();
      for (const [name, repo] of repos) {
        const live = liveManifests(repo);
        // The collector deleted the rest: the model follows.
        for (const digest of [...repo.manifests.keys()]) {
          if (live.has(digest)) continue;
          repo.manifests.delete(digest);
          expect((await fetch(`${url}/v2/${name}/manifests/${digest}`)).status, `dead manifest ${digest} in ${name}`).toBe(404);
        }
        for (const [tag, digest] of repo.tags) {
          const res = await fetch(`${url}/v2/${name}/manifests/${tag}`);
          expect(res.status, `${name}:${tag}`).toBe(200);
          expect(sha256(new Uint8Array(await res.arrayBuffer()))).toBe(digest);
        }
        for (const digest of live) {
          const m = repo.manifests.get(digest)!;
          reachable.add(digest);
          const res = await fetch(`${url}/v2/${name}/manifests/${digest}`);
          expect(res.status, `${name}@${digest}`).toBe(200);
          expect(await res.text()).toBe(m.text);
          for (const blob of [...m.blobs, ...m.children]) reachable.add(blob);
          for (const blob of m.blobs) {
            const b = await fetch(`${url}/v2/${name}/blobs/${blob}`);
            expect(b.status, `${name} blob ${blob}`).toBe(200);
            expect(sha256(new Uint8Array(await b.arrayBuffer()))).toBe(blob);
          }
        }
      }
      const keys = await storedKeys(edge);
      // Every unreachable blob is gone, and nothing reachable is.
      expect(blobDigests(keys).sort()).toEqual([...reachable].sort());
      for (const key of keys.filter((k) => k.startsWith("metainfo/"))) expect(reachable.has(key.slice("metainfo/".length, -".json".length).replace("/", ":"))).toBe(true);
      // Upload leftovers: only the tails of uploads still open.
      const tails = keys.filter((k) => k.startsWith("uploads/"));
      expect(tails.length).toBe(openUploads.length);
      expect(keys.filter((k) => k.startsWith("content/"))).toEqual([]);
    };

    let runs = 0;
    for (let op = 0; op < 70; op++) {
      const action = weighted[rand(weighted.length)]!;
      await actions[action]!();
      if (op % 9 === 8) {
        const report = await runGc(url);
        expect(report.dryRun).toBe(false);
        runs++;
        await verify();
      }
    }
    const last = await runGc(url);
    await verify();
    expect(runs).toBeGreaterThan(5);
    expect(last.counters.repositories).toBe(3);
  }, 600_000);
});
