import { describe, expect, it } from "vitest";
import { parseManifest, summarizeManifest } from "../../src/shared/oci/manifest.js";
import { MEDIA_TYPE } from "../../src/shared/oci/media-types.js";
import { OciError } from "../../src/shared/oci/errors.js";

const d = (c: string) => `sha256:${c.repeat(64)}`;
const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
const image = {
  schemaVersion: 2,
  mediaType: MEDIA_TYPE.OCI_MANIFEST,
  config: { mediaType: MEDIA_TYPE.OCI_CONFIG, digest: d("a"), size: 10 },
  layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: d("b"), size: 20 }],
};

function codeOf(run: () => unknown): string | undefined {
  try {
    run();
  } catch (error) {
    return (error as OciError).code;
  }
  return undefined;
}

describe("parseManifest", () => {
  it("accepts an OCI image manifest and lists its blobs", () => {
    const parsed = parseManifest(enc(image), MEDIA_TYPE.OCI_MANIFEST);
    expect(parsed.kind).toBe("image");
    expect(summarizeManifest(parsed)).toMatchObject({ blobs: [d("a"), d("b")], children: [], artifactType: MEDIA_TYPE.OCI_CONFIG });
  });

  it("accepts an index and a Docker manifest list, listing children", () => {
    const index = { schemaVersion: 2, mediaType: MEDIA_TYPE.OCI_INDEX, manifests: [{ mediaType: MEDIA_TYPE.OCI_MANIFEST, digest: d("c"), size: 5 }] };
    expect(summarizeManifest(parseManifest(enc(index), MEDIA_TYPE.OCI_INDEX)).children).toEqual([d("c")]);
    const list = { ...index, mediaType: MEDIA_TYPE.DOCKER_MANIFEST_LIST };
    expect(parseManifest(enc(list), `${MEDIA_TYPE.DOCKER_MANIFEST_LIST}; charset=utf-8`).kind).toBe("index");
  });

  it("records subject, artifactType and annotations for referrers", () => {
    const artifact = { ...image, artifactType: "application/x.sbom", subject: { mediaType: MEDIA_TYPE.OCI_MANIFEST, digest: d("e"), size: 1 }, annotations: { a: "b" } };
    expect(summarizeManifest(parseManifest(enc(artifact), MEDIA_TYPE.OCI_MANIFEST))).toMatchObject({
      subject: d("e"),
      artifactType: "application/x.sbom",
      annotations: { a: "b" },
    });
  });

  it.each([
    ["not JSON", new TextEncoder().encode("{"), MEDIA_TYPE.OCI_MANIFEST],
    ["an array", enc([]), MEDIA_TYPE.OCI_MANIFEST],
    ["unknown media type", enc(image), "application/json"],
    ["mismatched mediaType", enc(image), MEDIA_TYPE.OCI_INDEX],
    ["missing config", enc({ ...image, config: undefined }), MEDIA_TYPE.OCI_MANIFEST],
    ["schemaVersion 1", enc({ ...image, schemaVersion: 1 }), MEDIA_TYPE.OCI_MANIFEST],
    ["bad digest", enc({ ...image, layers: [{ mediaType: "a/b", digest: "nope", size: 1 }] }), MEDIA_TYPE.OCI_MANIFEST],
    ["negative size", enc({ ...image, layers: [{ mediaType: "a/b", digest: d("b"), size: -1 }] }), MEDIA_TYPE.OCI_MANIFEST],
    ["invalid UTF-8", new Uint8Array([0x7b, 0xff, 0x7d]), MEDIA_TYPE.OCI_MANIFEST],
  ])("refuses %s with MANIFEST_INVALID", (_label, bytes, type) => {
    expect(codeOf(() => parseManifest(bytes, type))).toBe("MANIFEST_INVALID");
  });

  it("takes the media type from the body when no Content-Type is sent", () => {
    expect(parseManifest(enc(image), undefined).mediaType).toBe(MEDIA_TYPE.OCI_MANIFEST);
  });
});
