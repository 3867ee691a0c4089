import { afterAll, beforeAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import { randomBytes } from "node:crypto";
import { startTestEdge, type TestEdge } from "../helpers/edge.js";
import { pushBlob, sha256 } from "../helpers/registry-client.js";
import { OCI_ERROR_CODES } from "../../src/shared/oci/errors.js";

/**
 * Property-based fuzzing of the edge's `/v2` API (issue #6, "Bad input") against the real Worker
 * (miniflare, or the Deno edge with SHOAL_TEST_EDGE=deno): random methods, paths, headers and
 * bodies, random manifests, and random sequences of upload requests. Whatever comes in, the answer
 * is a registry answer (an OCI error with a JSON body for a refusal), never a 5xx or a hang, and
 * nothing wrong is ever stored: a blob or manifest that is accepted reads back byte for byte
 * under the digest of its bytes.
 */
let edge: TestEdge;
beforeAll(async () => {
  edge = await startTestEdge();
});
afterAll(async () => edge?.destroy());

// A failing property shrinks through many requests: stop at a limit and fail rather than hang.
fc.configureGlobal({ interruptAfterTimeLimit: 60_000, markInterruptAsFailure: true });

const CODES = new Set(Object.keys(OCI_ERROR_CODES));
const METHODS = ["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS", "PROPFIND"];

/** A registry's answer: under 500, and a refusal (but to HEAD) carries OCI errors as JSON. */
async function expectRegistryAnswer(res: Response, method: string, what: string): Promise<void> {
  expect(res.status, `${what} → ${res.status}`).toBeLessThan(500);
  const body = await res.arrayBuffer();
  if (res.status < 400 || method === "HEAD" || res.status === 401) return;
  let parsed: { errors?: { code?: unknown; message?: unknown }[] };
  try {
    parsed = JSON.parse(new TextDecoder().decode(body));
  } catch {
    throw new Error(`${what} → ${res.status} with a body that is not JSON: ${new TextDecoder().decode(body).slice(0, 200)}`);
  }
  expect(parsed.errors?.length, `${what}: errors[]`).toBeGreaterThan(0);
  for (const error of parsed.errors!) {
    expect(CODES.has(String(error.code)), `${what}: code ${String(error.code)}`).toBe(true);
    expect(typeof error.message).toBe("string");
  }
}

const hex = (n: number) => fc.string({ unit: fc.constantFrom(..."0123456789abcdef"), minLength: n, maxLength: n });
const anyText = fc.string({ unit: "binary", maxLength: 40 });
const segment = fc.oneof(
  fc.constantFrom("fuzz", "a", "library", "x-y", "a.b", "A", "..", ".", "_", "-a", "a--b", "a__b", "%2F", "%00", "manifests", "blobs", "uploads", "tags"),
  fc.string({ unit: fc.constantFrom(..."abz09._-"), minLength: 1, maxLength: 12 }),
  anyText.map(encodeURIComponent),
  fc.constant("n".repeat(300)),
);
const digestLike = fc.oneof(
  hex(64).map((h) => `sha256:${h}`),
  hex(128).map((h) => `sha512:${h}`),
  fc.constantFrom("sha256:", "sha256:xyz", "md5:abc", "sha256:" + "a".repeat(63), "SHA256:" + "a".repeat(64), "sha256+b64u:" + "a".repeat(43)),
  anyText.map(encodeURIComponent),
);
const reference = fc.oneof(fc.constantFrom("latest", "v1", "_", "-bad", "a".repeat(129)), digestLike, anyText.map(encodeURIComponent));
const tail = fc.oneof(
  reference.map((r) => `manifests/${r}`),
  digestLike.map((d) => `blobs/${d}`),
  fc.constant("blobs/uploads/"),
  fc.oneof(fc.uuid(), anyText.map(encodeURIComponent)).map((id) => `blobs/uploads/${id}`),
  fc.constant("tags/list"),
  fc.constant("referrers/sha256:" + "c".repeat(64)),
  segment,
);
const query = fc.oneof(
  fc.constant(""),
  fc.tuple(fc.constantFrom("n", "last", "digest", "mount", "from", "artifactType"), anyText).map(([k, v]) => `?${k}=${encodeURIComponent(v)}`),
  digestLike.map((d) => `?digest=${d}`),
  fc.tuple(digestLike, segment).map(([d, from]) => `?mount=${d}&from=${from}`),
  fc.integer({ min: -5, max: 100_000 }).map((n) => `?n=${n}`),
);
const path = fc.oneof(
  { weight: 8, arbitrary: fc.tuple(fc.array(segment, { minLength: 1, maxLength: 4 }), tail, query).map(([name, rest, q]) => `/v2/${name.join("/")}/${rest}${q}`) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom("/v2/", "/v2", "/v2/_catalog"), query).map(([p, q]) => p + q) },
);
const headerValue = fc.string({ unit: fc.constantFrom(..."0123456789-/ ,;=*abcdefxyzABCZ.+:bytes"), maxLength: 40 });
const headers = fc.record(
  {
    "Content-Type": fc.oneof(
      fc.constantFrom("application/octet-stream", "application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.v2+json", "application/json", "text/plain"),
      headerValue,
    ),
    "Content-Range": fc.oneof(fc.tuple(fc.nat(2000), fc.nat(2000)).map(([a, b]) => `${a}-${b}`), headerValue),
    Range: fc.oneof(fc.tuple(fc.nat(2000), fc.nat(2000)).map(([a, b]) => `bytes=${a}-${b}`), headerValue),
    Accept: fc.oneof(fc.constant("*/*"), headerValue),
  },
  { requiredKeys: [] },
);
const body = fc.oneof(fc.constant(undefined), fc.uint8Array({ maxLength: 2048 }), fc.jsonValue().map((v) => JSON.stringify(v)));

describe("/v2 API fuzz", () => {
  it("any method, path, query, headers and body: a registry answer, never a 5xx", async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...METHODS), path, headers, body, async (method, url, hdrs, data) => {
        const withBody = !["GET", "HEAD", "OPTIONS"].includes(method) && data !== undefined;
        const res = await fetch(`${edge.url}${url}`, { method, headers: hdrs, body: withBody ? data : undefined });
        await expectRegistryAnswer(res, method, `${method} ${url}`);
      }),
      { numRuns: 400 },
    );
    // And the edge still works.
    expect((await fetch(`${edge.url}/v2/`)).status).toBe(200);
  });

  const MANIFEST = "application/vnd.oci.image.manifest.v1+json";
  const validManifest = (config: string, layer: string) => ({
    schemaVersion: 2,
    mediaType: MANIFEST,
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: config, size: 2 },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: layer, size: 5 }],
  });

  it("random, mutated and truncated manifests: stored byte for byte under their digest, or refused with an OCI error", async () => {
    const config = await pushBlob(edge.url, "fuzz/manifests", "{}");
    const layer = await pushBlob(edge.url, "fuzz/manifests", "layer");
    const valid = validManifest(config, layer);
    const mutated = fc
      .tuple(fc.constantFrom("schemaVersion", "mediaType", "config", "layers", "subject", "annotations", "manifests", "artifactType"), fc.jsonValue())
      .map(([key, value]) => JSON.stringify({ ...valid, [key]: value }));
    const manifestBody = fc.oneof(
      fc.jsonValue().map((v) => JSON.stringify(v)),
      mutated,
      fc.nat(400).map((n) => JSON.stringify(valid).slice(0, n)),
      fc.uint8Array({ maxLength: 512 }),
      fc.constant(JSON.stringify(valid)),
    );
    const contentType = fc.constantFrom(MANIFEST, "application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.v2+json", "application/octet-stream", "");
    let stored = 0;
    await fc.assert(
      fc.asyncProperty(manifestBody, contentType, fc.oneof(fc.constant("fuzzed"), digestLike), async (data, type, ref) => {
        const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
        const res = await fetch(`${edge.url}/v2/fuzz/manifests/manifests/${ref}`, { method: "PUT", headers: type ? { "Content-Type": type } : {}, body: bytes });
        await expectRegistryAnswer(res, "PUT", `PUT manifest ${ref} (${type})`);
        if (res.status !== 201) return;
        stored++;
        const digest = res.headers.get("docker-content-digest")!;
        expect(digest).toBe(sha256(bytes));
        const back = await fetch(`${edge.url}/v2/fuzz/manifests/manifests/${digest}`);
        expect(Buffer.from(await back.arrayBuffer()).equals(Buffer.from(bytes))).toBe(true);
      }),
      { numRuns: 300 },
    );
    expect(stored).toBeGreaterThan(0); // the generator does reach valid manifests
  });

  type Op = { kind: "patch"; data: Uint8Array; range: "right" | "wrong" | "none" } | { kind: "put"; data: Uint8Array; digest: "right" | "wrong" | "none" } | { kind: "status" } | { kind: "delete" };
  const op: fc.Arbitrary<Op> = fc.oneof(
    { weight: 4, arbitrary: fc.record({ kind: fc.constant("patch" as const), data: fc.uint8Array({ maxLength: 300 }), range: fc.constantFrom("right" as const, "wrong" as const, "none" as const) }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant("put" as const), data: fc.uint8Array({ maxLength: 100 }), digest: fc.constantFrom("right" as const, "wrong" as const, "none" as const) }) },
    { weight: 1, arbitrary: fc.constant({ kind: "status" as const }) },
    { weight: 1, arbitrary: fc.constant({ kind: "delete" as const }) },
  );

  it("random sequences of upload requests: offsets as sent, and only a blob whose bytes match its digest appears", async () => {
    // A "wrong" digest is of bytes no step uploads (one byte more could be a blob another run pushed).
    const NOT_UPLOADED = randomBytes(32);
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 8 }), async (ops) => {
        const start = await fetch(`${edge.url}/v2/fuzz/uploads/blobs/uploads/`, { method: "POST" });
        expect(start.status).toBe(202);
        let location = new URL(start.headers.get("location")!, edge.url).toString();
        /** What the session holds, as far as the client knows; null once it may be gone. */
        let sent: Buffer | null = Buffer.alloc(0);
        for (const step of ops) {
          const what = `${step.kind} after ${sent?.length ?? "?"} bytes`;
          if (step.kind === "patch") {
            const offset = sent?.length ?? 0;
            const range = step.range === "right" ? `${offset}-${offset + step.data.length - 1}` : step.range === "wrong" ? `${offset + 7}-${offset + 7 + step.data.length}` : undefined;
            const res = await fetch(location, {
              method: "PATCH",
              headers: { "Content-Type": "application/octet-stream", ...(range ? { "Content-Range": range } : {}) },
              body: step.data,
            });
            await expectRegistryAnswer(res, "PATCH", what);
            if (res.status === 202) {
              if (sent) {
                expect(step.range).not.toBe("wrong");
                sent = Buffer.concat([sent, step.data]);
                expect(res.headers.get("range")).toBe(sent.length ? `0-${sent.length - 1}` : "0-0");
              }
              location = new URL(res.headers.get("location")!, edge.url).toString();
            } else if (sent && step.range !== "wrong" && !(step.range === "right" && step.data.length === 0)) {
              throw new Error(`${what}: a well-formed chunk was refused with ${res.status}`);
            }
          } else if (step.kind === "put") {
            const whole = Buffer.concat([sent ?? Buffer.alloc(0), step.data]);
            const digest = step.digest === "right" ? sha256(whole) : step.digest === "wrong" ? sha256(Buffer.concat([whole, NOT_UPLOADED])) : undefined;
            const url = digest ? `${location}${location.includes("?") ? "&" : "?"}digest=${digest}` : location;
            const res = await fetch(url, { method: "PUT", headers: { "Content-Type": "application/octet-stream" }, body: step.data });
            await expectRegistryAnswer(res, "PUT", what);
            if (res.status === 201) {
              const got = res.headers.get("docker-content-digest")!;
              const blob = await fetch(`${edge.url}/v2/fuzz/uploads/blobs/${got}`);
              expect(blob.status).toBe(200);
              expect(sha256(new Uint8Array(await blob.arrayBuffer()))).toBe(got);
              if (sent) expect(got).toBe(sha256(whole));
            } else if (step.digest === "wrong") {
              const blob = await fetch(`${edge.url}/v2/fuzz/uploads/blobs/${digest}`, { method: "HEAD" });
              expect(blob.status).toBe(404);
            }
            sent = null;
          } else if (step.kind === "status") {
            const res = await fetch(location);
            await expectRegistryAnswer(res, "GET", what);
            if (sent && res.status === 204) expect(res.headers.get("range")).toBe(sent.length ? `0-${sent.length - 1}` : "0-0");
          } else {
            const res = await fetch(location, { method: "DELETE" });
            await expectRegistryAnswer(res, "DELETE", what);
            sent = null;
          }
        }
      }),
      { numRuns: 120 },
    );
  });
});
