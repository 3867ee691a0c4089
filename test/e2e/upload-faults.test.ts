import { afterAll, beforeAll, describe, expect, it } from "vitest";
import net from "node:net";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { startEdgeProcess } from "../helpers/processes.js";
import { pushBlobChunked, pushManifest, sha256, startUpload } from "../helpers/registry-client.js";

/**
 * An upload cut off at any point leaves nothing visible, and the next push of the same blob works:
 * a client that goes away in the middle of a chunk, and the edge process killed in the middle of one.
 */
let home: string;
let edge: Awaited<ReturnType<typeof startEdgeProcess>>;

beforeAll(async () => {
  home = await mkdtemp(path.join(os.tmpdir(), "shoal-upload-faults-"));
  edge = await startEdgeProcess(home);
});
afterAll(async () => {
  await edge?.proc.stop();
  await rm(home, { recursive: true, force: true });
});

async function nothingVisible(name: string, digest: string): Promise<void> {
  expect((await fetch(`${edge.url}/v2/${name}/blobs/${digest}`, { method: "HEAD" })).status).toBe(404);
  expect((await fetch(`${edge.url}/v2/${name}/tags/list`)).status).toBe(404);
}

async function pushAndPull(name: string, blob: Buffer): Promise<void> {
  const digest = await pushBlobChunked(edge.url, name, blob, 16 * 1024 * 1024);
  const config = Buffer.from("{}");
  const configDigest = await pushBlobChunked(edge.url, name, config, 1024);
  const manifest = {
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: configDigest, size: config.length },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest, size: blob.length }],
  };
  expect((await pushManifest(edge.url, name, "v1", manifest, manifest.mediaType)).status).toBe(201);
  const res = await fetch(`${edge.url}/v2/${name}/blobs/${digest}`);
  expect(sha256(Buffer.from(await res.arrayBuffer()))).toBe(digest);
}

describe("uploads cut off", () => {
  it("by a client that goes away in the middle of a chunk", async () => {
    const blob = randomBytes(40 * 1024 * 1024);
    const digest = sha256(blob);
    const location = await startUpload(edge.url, "faults/client-gone");
    const url = new URL(location, edge.url);
    await new Promise<void>((resolve, reject) => {
      const socket = net.connect(Number(url.port), url.hostname, () => {
        socket.write(
          `PATCH ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: application/octet-stream\r\n` +
            `Content-Range: 0-${blob.length - 1}\r\nContent-Length: ${blob.length}\r\n\r\n`,
        );
        socket.write(blob.subarray(0, 25 * 1024 * 1024), () => {
          socket.destroy(); // gone, 15 MiB short
          resolve();
        });
      });
      socket.on("error", reject);
    });
    await new Promise((r) => setTimeout(r, 1_000));
    await nothingVisible("faults/client-gone", digest);
    // The cut session holds nothing: it is where it was before the chunk (or gone).
    const status = await fetch(new URL(location, edge.url));
    if (status.status === 204) expect(status.headers.get("range") ?? "0-0").toMatch(/^0-(0|-1)$|^$/);
    else expect(status.status).toBe(404);
    await pushAndPull("faults/client-gone", blob);
  });

  it("by the edge process killed in the middle of a chunk, and restarted", async () => {
    const blob = randomBytes(48 * 1024 * 1024);
    const digest = sha256(blob);
    const location = await startUpload(edge.url, "faults/edge-killed");
    let sent = 0;
    const slow = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (sent >= blob.length) return controller.close();
        await new Promise((r) => setTimeout(r, 40));
        const chunk = blob.subarray(sent, sent + 1024 * 1024);
        sent += chunk.length;
        controller.enqueue(chunk);
      },
    });
    const patch = fetch(new URL(location, edge.url), {
      method: "PATCH",
      headers: { "Content-Type": "application/octet-stream", "Content-Range": `0-${blob.length - 1}`, "Content-Length": String(blob.length) },
      body: slow,
      duplex: "half",
    } as RequestInit).then(
      (res) => res.status,
      () => "failed",
    );
    while (sent < 20 * 1024 * 1024) await new Promise((r) => setTimeout(r, 20));
    await edge.proc.stop("SIGKILL");
    expect(await patch).toBe("failed");
    await edge.proc.start(); // same state directory and port
    await nothingVisible("faults/edge-killed", digest);
    await pushAndPull("faults/edge-killed", blob);
  });
});
