import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestEdge, type TestEdge } from "../helpers/edge.js";
import { errorCode, pushBlob, pushImage, pushManifest, sha256 } from "../helpers/registry-client.js";

const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json";

let edge: TestEdge;
beforeAll(async () => {
  edge = await startTestEdge();
});
afterAll(async () => edge?.destroy());

describe("manifests", () => {
  it("PUT by tag (201 with Location and digest), then GET/HEAD by tag and by digest with the stored media type", async () => {
    const { text, digest } = await pushImage(edge.url, "m/basic", "v1", ["a", "b"]);
    for (const ref of ["v1", digest]) {
      const head = await fetch(`${edge.url}/v2/m/basic/manifests/${ref}`, { method: "HEAD" });
      expect(head.status).toBe(200);
      expect(head.headers.get("Content-Type")).toBe(OCI_MANIFEST);
      expect(head.headers.get("Docker-Content-Digest")).toBe(digest);
      expect(head.headers.get("Content-Length")).toBe(String(Buffer.byteLength(text)));
      const get = await fetch(`${edge.url}/v2/m/basic/manifests/${ref}`);
      expect(await get.text()).toBe(text);
    }
  });

  it("stores Docker schema 2 manifests and manifest lists byte for byte", async () => {
    const config = await pushBlob(edge.url, "m/docker", '{"architecture":"amd64","os":"linux"}');
    const layer = await pushBlob(edge.url, "m/docker", "layer");
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: DOCKER_MANIFEST,
      config: { mediaType: "application/vnd.docker.container.image.v1+json", digest: config, size: 37 },
      layers: [{ mediaType: "application/vnd.docker.image.rootfs.diff.tar.gzip", digest: layer, size: 5 }],
    }, null, 3);
    const put = await pushManifest(edge.url, "m/docker", sha256(manifest), manifest, DOCKER_MANIFEST);
    expect(put.status).toBe(201);
    const list = JSON.stringify({ schemaVersion: 2, mediaType: DOCKER_LIST, manifests: [{ mediaType: DOCKER_MANIFEST, digest: sha256(manifest), size: Buffer.byteLength(manifest), platform: { architecture: "amd64", os: "linux" } }] });
    expect((await pushManifest(edge.url, "m/docker", "list", list, DOCKER_LIST)).status).toBe(201);
    const get = await fetch(`${edge.url}/v2/m/docker/manifests/list`);
    expect(get.headers.get("Content-Type")).toBe(DOCKER_LIST);
    expect(await get.text()).toBe(list);
    expect(await (await fetch(`${edge.url}/v2/m/docker/manifests/${sha256(manifest)}`)).text()).toBe(manifest);
  });

  it("refuses a manifest that references blobs the repository lacks (MANIFEST_BLOB_UNKNOWN)", async () => {
    const config = await pushBlob(edge.url, "m/missing", "{}");
    const manifest = { schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: config, size: 2 }, layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: sha256("absent"), size: 6 }] };
    const res = await pushManifest(edge.url, "m/missing", "v1", manifest, OCI_MANIFEST);
    // distribution's API documentation: 400 with MANIFEST_BLOB_UNKNOWN.
    expect(res.status).toBe(400);
    expect(await errorCode(res)).toBe("MANIFEST_BLOB_UNKNOWN");
    // A blob in another repository does not count.
    const other = await pushBlob(edge.url, "m/elsewhere", "elsewhere");
    const res2 = await pushManifest(edge.url, "m/missing", "v1", { ...manifest, layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: other, size: 9 }] }, OCI_MANIFEST);
    expect(await errorCode(res2)).toBe("MANIFEST_BLOB_UNKNOWN");
  });

  it("refuses an index whose child manifests are unknown", async () => {
    const index = { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest: sha256("nope"), size: 4 }] };
    const res = await pushManifest(edge.url, "m/index", "v1", index, OCI_INDEX);
    expect(await errorCode(res)).toBe("MANIFEST_BLOB_UNKNOWN");
  });

  it.each([
    ["invalid JSON", "{", OCI_MANIFEST],
    ["a media type mismatch", JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] }), OCI_MANIFEST],
    ["an unsupported media type", JSON.stringify({ schemaVersion: 2 }), "text/plain"],
    ["a missing config", JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, layers: [] }), OCI_MANIFEST],
  ])("refuses %s with MANIFEST_INVALID", async (_label, body, type) => {
    const res = await pushManifest(edge.url, "m/invalid", "v1", body, type);
    expect(res.status).toBe(400);
    expect(await errorCode(res)).toBe("MANIFEST_INVALID");
  });

  it("answers 404 MANIFEST_UNKNOWN to a GET or HEAD of a reference that is not a valid tag, 400 to a PUT of one", async () => {
    // The conformance suite pulls `.INVALID_MANIFEST_NAME` and expects 404.
    for (const method of ["GET", "HEAD"]) {
      const res = await fetch(`${edge.url}/v2/m/basic/manifests/.INVALID_MANIFEST_NAME`, { method });
      expect(res.status).toBe(404);
      if (method === "GET") expect(await errorCode(res)).toBe("MANIFEST_UNKNOWN");
    }
    const put = await pushManifest(edge.url, "m/basic", ".INVALID_MANIFEST_NAME", "{}", OCI_MANIFEST);
    expect(put.status).toBe(400);
    expect(await errorCode(put)).toBe("MANIFEST_INVALID");
  });

  it("refuses a manifest over 4 MiB with 413", async () => {
    const res = await pushManifest(edge.url, "m/huge", "v1", "x".repeat(4 * 1024 * 1024 + 1), OCI_MANIFEST);
    expect(res.status).toBe(413);
    expect(await errorCode(res)).toBe("MANIFEST_INVALID");
  });

  it("accepts a manifest near 4 MiB (large annotations) and lists it as a referrer", async () => {
    const subject = await pushImage(edge.url, "m/large", "base");
    const empty = await pushBlob(edge.url, "m/large", "{}");
    const manifest = JSON.stringify({
      schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType: "application/x.big",
      config: { mediaType: "application/vnd.oci.empty.v1+json", digest: empty, size: 2 }, layers: [],
      subject: { mediaType: OCI_MANIFEST, digest: subject.digest, size: subject.size },
      annotations: { big: "A".repeat(3_900_000) },
    });
    const res = await pushManifest(edge.url, "m/large", "big", manifest, OCI_MANIFEST);
    expect(res.status).toBe(201);
    expect(await (await fetch(`${edge.url}/v2/m/large/manifests/big`)).text()).toBe(manifest);
    const referrers = (await (await fetch(`${edge.url}/v2/m/large/referrers/${subject.digest}`)).json()) as { manifests: { annotations: { big: string } }[] };
    expect(referrers.manifests[0]!.annotations.big.length).toBe(3_900_000);
  });

  it("PUT by digest checks the digest (DIGEST_INVALID)", async () => {
    const { manifest } = await pushImage(edge.url, "m/bydigest", "v1");
    const res = await pushManifest(edge.url, "m/bydigest", sha256("other"), manifest, OCI_MANIFEST);
    expect(res.status).toBe(400);
    expect(await errorCode(res)).toBe("DIGEST_INVALID");
  });

  it("unknown tags and digests are MANIFEST_UNKNOWN; a bad digest is refused", async () => {
    await pushImage(edge.url, "m/unknown", "v1");
    const tag = await fetch(`${edge.url}/v2/m/unknown/manifests/v2`);
    expect(tag.status).toBe(404);
    expect(await errorCode(tag)).toBe("MANIFEST_UNKNOWN");
    expect((await fetch(`${edge.url}/v2/m/unknown/manifests/${sha256("x")}`)).status).toBe(404);
    expect((await fetch(`${edge.url}/v2/m/unknown/manifests/bad%20tag`)).status).toBe(404);
    expect((await fetch(`${edge.url}/v2/m/unknown/manifests/sha256:totallywrong`)).status).toBe(400);
  });

  it("DELETE by tag removes the tag; DELETE by digest removes the manifest and its tags", async () => {
    const { digest } = await pushImage(edge.url, "m/delete", "v1");
    await pushManifest(edge.url, "m/delete", "v2", (await (await fetch(`${edge.url}/v2/m/delete/manifests/v1`)).text()), OCI_MANIFEST);
    expect((await fetch(`${edge.url}/v2/m/delete/manifests/v1`, { method: "DELETE" })).status).toBe(202);
    expect((await fetch(`${edge.url}/v2/m/delete/manifests/v1`)).status).toBe(404);
    expect((await fetch(`${edge.url}/v2/m/delete/manifests/v2`)).status).toBe(200);
    expect((await fetch(`${edge.url}/v2/m/delete/manifests/${digest}`, { method: "DELETE" })).status).toBe(202);
    expect((await fetch(`${edge.url}/v2/m/delete/manifests/v2`)).status).toBe(404);
    expect((await fetch(`${edge.url}/v2/m/delete/manifests/${digest}`)).status).toBe(404);
    expect((await fetch(`${edge.url}/v2/m/delete/manifests/${digest}`, { method: "DELETE" })).status).toBe(404);
  });

  it("a tag moves to the newest manifest pushed under it, at once", async () => {
    const first = await pushImage(edge.url, "m/move", "latest", ["one"]);
    const second = await pushImage(edge.url, "m/move", "latest", ["two"]);
    expect(first.digest).not.toBe(second.digest);
    const head = await fetch(`${edge.url}/v2/m/move/manifests/latest`, { method: "HEAD" });
    expect(head.headers.get("Docker-Content-Digest")).toBe(second.digest);
  });
});

describe("referrers", () => {
  it("lists manifests whose subject is the digest, filters by artifactType, and says OCI-Subject on push", async () => {
    const subject = await pushImage(edge.url, "r/app", "v1");
    const empty = await pushBlob(edge.url, "r/app", "{}");
    const artifact = (type: string, note: string) => ({
      schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType: type,
      config: { mediaType: "application/vnd.oci.empty.v1+json", digest: empty, size: 2 },
      layers: [], subject: { mediaType: OCI_MANIFEST, digest: subject.digest, size: subject.size }, annotations: { note },
    });
    const sbom = artifact("application/spdx+json", "sbom");
    const sig = artifact("application/vnd.dev.cosign", "sig");
    const putSbom = await pushManifest(edge.url, "r/app", sha256(JSON.stringify(sbom)), sbom, OCI_MANIFEST);
    expect(putSbom.status).toBe(201);
    expect(putSbom.headers.get("OCI-Subject")).toBe(subject.digest);
    await pushManifest(edge.url, "r/app", sha256(JSON.stringify(sig)), sig, OCI_MANIFEST);

    const all = await fetch(`${edge.url}/v2/r/app/referrers/${subject.digest}`);
    expect(all.status).toBe(200);
    expect(all.headers.get("Content-Type")).toBe(OCI_INDEX);
    const body = (await all.json()) as { manifests: { artifactType: string; annotations: Record<string, string>; digest: string }[] };
    expect(body.manifests.map((m) => m.artifactType).sort()).toEqual(["application/spdx+json", "application/vnd.dev.cosign"]);
    expect(body.manifests.find((m) => m.artifactType === "application/spdx+json")!.annotations).toEqual({ note: "sbom" });

    const filtered = await fetch(`${edge.url}/v2/r/app/referrers/${subject.digest}?artifactType=application/spdx%2Bjson`);
    expect(filtered.headers.get("OCI-Filters-Applied")).toBe("artifactType");
    expect(((await filtered.json()) as { manifests: unknown[] }).manifests).toHaveLength(1);

    const none = await fetch(`${edge.url}/v2/r/app/referrers/${sha256("nothing")}`);
    expect(none.status).toBe(200);
    expect(((await none.json()) as { manifests: unknown[] }).manifests).toEqual([]);
    // Deleting a referrer removes it from the list.
    await fetch(`${edge.url}/v2/r/app/manifests/${sha256(JSON.stringify(sig))}`, { method: "DELETE" });
    const after = (await (await fetch(`${edge.url}/v2/r/app/referrers/${subject.digest}`)).json()) as { manifests: unknown[] };
    expect(after.manifests).toHaveLength(1);
  });
});
