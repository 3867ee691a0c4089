import type { Digest } from "../../shared/oci/digest.js";
import { parseManifest } from "../../shared/oci/manifest.js";
import type { Services } from "../services.js";
import type { Remote } from "./config.js";
import { RegistryClient, UpstreamError, reach } from "./registry-client.js";

/**
 * Copies one tag to a remote registry: every blob the remote lacks (HEAD first, so a retry or a
 * second tag of the same image sends nothing twice), the manifests (an index's children before the
 * index) and then the tag. Idempotent: running it again after a failure finishes the job.
 */
export class Replicator {
  private readonly client: RegistryClient;
  private readonly scope: string;

  constructor(
    private readonly services: Services,
    private readonly remote: Remote,
    private readonly remoteName: string,
  ) {
    this.client = new RegistryClient(remote);
    this.scope = `repository:${remoteName}:pull,push`;
  }

  async replicate(repository: string, tag: string, digest: string): Promise<{ blobs: number; bytes: number }> {
    const sent = { blobs: 0, bytes: 0 };
    await this.pushManifest(repository, digest as Digest, tag, sent);
    return sent;
  }

  private async pushManifest(repository: string, digest: Digest, reference: string, sent: { blobs: number; bytes: number }): Promise<void> {
    const stored = await this.services.repository(repository).manifestByDigest(digest);
    const bytes = await this.services.blobs.readBytes(digest);
    if (!stored || !bytes) throw new Error(`manifest ${digest} is not in ${repository} any more`);
    const parsed = parseManifest(bytes, stored.mediaType);
    if (parsed.kind === "index") {
      for (const child of parsed.manifest.manifests) await this.pushManifest(repository, child.digest as Digest, child.digest, sent);
    } else {
      for (const blob of [parsed.manifest.config, ...parsed.manifest.layers]) {
        if (await this.pushBlob(blob.digest as Digest, blob.size)) {
          sent.blobs++;
          sent.bytes += blob.size;
        }
      }
    }
    const res = await this.call(`/v2/${this.remoteName}/manifests/${reference}`, { method: "PUT", headers: { "Content-Type": stored.mediaType }, body: bytes });
    await expect(res, [201, 200], `PUT manifest ${reference}`);
  }

  /** Sends a blob unless the remote has it; true when it was sent. */
  private async pushBlob(digest: Digest, size: number): Promise<boolean> {
    const head = await this.call(`/v2/${this.remoteName}/blobs/${digest}`, { method: "HEAD" });
    await head.body?.cancel();
    if (head.status === 200) return false;
    for (let attempt = 0; ; attempt++) {
      const start = await this.call(`/v2/${this.remoteName}/blobs/uploads/`, { method: "POST", headers: { "Content-Length": "0" } });
      await expect(start, [202], "start an upload");
      const location = new URL(start.headers.get("location") ?? "", `${this.remote.url}/`);
      location.searchParams.set("digest", digest);
      const read = await this.services.blobs.read(digest);
      if (!read) throw new Error(`blob ${digest} is not in storage`);
      const put = await this.call(`${location.pathname}${location.search}`, {
        method: "PUT",
        headers: { "Content-Type": "application/octet-stream", "Content-Length": String(size) },
        body: read.body,
        duplex: "half",
      } as RequestInit);
      // A token that expired while the stream was read: once more, with a fresh one (cached now).
      if (put.status === 401 && put.headers.get("x-shoal-retry") && attempt === 0) continue;
      await expect(put, [201], `upload ${digest}`);
      return true;
    }
  }

  private call(path: string, init: RequestInit): Promise<Response> {
    const url = path.startsWith("http") ? path : `${path}`;
    return reach(() => this.client.request(url, { ...init, scope: this.scope }), `${this.remote.url} ${init.method ?? "GET"} ${path.split("?")[0]}`);
  }
}

async function expect(res: Response, ok: number[], what: string): Promise<void> {
  if (ok.includes(res.status)) {
    if (res.status !== 202) await res.body?.cancel();
    return;
  }
  const text = await res.text().catch(() => "");
  throw new UpstreamError(`${what}: the remote answered ${res.status} ${text.slice(0, 200)}`.trim());
}
