import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { startTestEdge, type TestEdge } from "../helpers/edge.js";
import { pushBlob, sha256 } from "../helpers/registry-client.js";

const exec = promisify(execFile);
const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";

/** The devcluster's Node front with curl, which sends `Expect: 100-continue` for bodies over 1 MiB. */
let edge: TestEdge;
let scratch: string;
beforeAll(async () => {
  edge = await startTestEdge();
  scratch = await mkdtemp(path.join(os.tmpdir(), "shoal-front-"));
});
afterAll(async () => {
  await edge?.destroy();
  await rm(scratch, { recursive: true, force: true });
});

/** curl -v: returns the status, the response headers and what curl sent (to see the Expect header). */
async function curl(args: string[]): Promise<{ status: number; headers: string; sent: string }> {
  const { stdout, stderr } = await exec("curl", ["-sS", "-v", "-o", "/dev/null", "-D", "-", "-w", "%{http_code}", ...args], { maxBuffer: 16 * 1024 * 1024 });
  const sent = stderr.split("\n").filter((l) => l.startsWith("> ")).join("\n");
  return { status: Number(stdout.trim().split("\n").pop()), headers: stdout, sent };
}

describe("the edge front with curl", () => {
  it("takes a 3 MB monolithic PUT sent with Expect: 100-continue", async () => {
    const bytes = randomBytes(3_000_000);
    const file = path.join(scratch, "blob");
    await writeFile(file, bytes);
    const start = await fetch(`${edge.url}/v2/front/curl/blobs/uploads/`, { method: "POST" });
    expect(start.status).toBe(202);
    const location = new URL(start.headers.get("Location")!, edge.url);
    location.searchParams.set("digest", sha256(bytes));
    const put = await curl(["-X", "PUT", "-H", "Content-Type: application/octet-stream", "--data-binary", `@${file}`, location.toString()]);
    expect(put.sent).toMatch(/Expect: 100-continue/i);
    expect(put.status).toBe(201);
    const get = await fetch(`${edge.url}/v2/front/curl/blobs/${sha256(bytes)}`);
    expect(Buffer.from(await get.arrayBuffer()).equals(bytes)).toBe(true);
  });

  it("takes a 4 MB manifest sent with Expect: 100-continue", async () => {
    const config = await pushBlob(edge.url, "front/curl", "{}");
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: "application/vnd.oci.empty.v1+json", digest: config, size: 2 },
      layers: [],
      annotations: { big: "M".repeat(4_000_000) },
    });
    const file = path.join(scratch, "manifest.json");
    await writeFile(file, manifest);
    const put = await curl(["-X", "PUT", "-H", `Content-Type: ${OCI_MANIFEST}`, "--data-binary", `@${file}`, `${edge.url}/v2/front/curl/manifests/big`]);
    expect(put.sent).toMatch(/Expect: 100-continue/i);
    expect(put.status).toBe(201);
    expect(await (await fetch(`${edge.url}/v2/front/curl/manifests/big`)).text()).toBe(manifest);
  });
});
