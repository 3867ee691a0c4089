import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { CliError, responseError } from "./cli-error.js";
import { writeFileAtomic } from "../fs/write-atomic.js";
import { cliDispatcher, describeTimeout } from "./http.js";

/**
 * An OCI push client for the CLI: blobs go up in chunks no larger than the edge's advertised
 * `OCI-Chunk-Max-Length` (Workers cap request bodies), and an interrupted upload resumes where the
 * edge says it stands — its Location is kept in a small state file, keyed by the edge, repository
 * and digest, until the blob is stored.
 */
export class PushClient {
  constructor(
    readonly base: string,
    private readonly authorization?: string,
    private readonly stateDir = defaultStateDir(),
  ) {}

  private async call(pathOrUrl: string, init: RequestInit = {}): Promise<Response> {
    const url = new URL(pathOrUrl, this.base);
    const headers = new Headers(init.headers);
    if (this.authorization) headers.set("Authorization", this.authorization);
    try {
      return await fetch(url, { ...init, headers, dispatcher: cliDispatcher() } as RequestInit);
    } catch (error) {
      const timeout = describeTimeout(error);
      if (timeout) throw new CliError(`the edge at ${this.base} did not answer ${init.method ?? "GET"} ${url.pathname}: ${timeout}`);
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      throw new CliError(`cannot reach the edge at ${this.base} (${cause?.code ?? cause?.message ?? (error as Error).message})`);
    }
  }

  async hasBlob(name: string, digest: string): Promise<boolean> {
    const res = await this.call(`/v2/${name}/blobs/${digest}`, { method: "HEAD" });
    if (res.status === 401) {
      throw this.authorization
        ? await responseError(res, "the edge refused the credentials (check the user and token given with --token or SHOAL_TOKEN)")
        : await failure(res, "the edge wants credentials (--token user:token or SHOAL_TOKEN)");
    }
    return res.status === 200;
  }

  /** Uploads bytes held in memory (a config, a manifest's small blobs) in one request. */
  async putSmallBlob(name: string, digest: string, bytes: Uint8Array): Promise<void> {
    if (await this.hasBlob(name, digest)) return;
    const res = await this.call(`/v2/${name}/blobs/uploads/?digest=${digest}`, { method: "POST", headers: { "Content-Type": "application/octet-stream" }, body: Buffer.from(bytes) });
    if (res.status !== 201) throw await failure(res, `upload of ${digest}`, Boolean(this.authorization));
  }

  /**
   * Uploads a file's bytes as the blob `digest`, chunk by chunk, resuming an earlier attempt.
   * Returns how many bytes it sent (0 when the edge had the blob).
   */
  async putFileBlob(name: string, digest: string, file: string, size: number, options: { chunkBytes?: number; onBytes?: (n: number) => void } = {}): Promise<number> {
    if (await this.hasBlob(name, digest)) {
      options.onBytes?.(size);
      return 0;
    }
    const stateFile = path.join(this.stateDir, `${createHash("sha256").update(`${this.base}\0${name}\0${digest}`).digest("hex")}.json`);
    let location: string | undefined;
    let offset = 0;
    let limit = Number.POSITIVE_INFINITY;
    try {
      const saved = JSON.parse(await readFile(stateFile, "utf8")) as { location: string };
      const status = await this.call(saved.location, { method: "GET" });
      await status.body?.cancel();
      if (status.status === 204) {
        location = status.headers.get("location") ?? saved.location;
        offset = rangeEnd(status.headers.get("range"));
        limit = Number(status.headers.get("oci-chunk-max-length") ?? Infinity);
      }
    } catch {
      // nothing to resume
    }
    if (!location) {
      const start = await this.call(`/v2/${name}/blobs/uploads/`, { method: "POST", headers: { "Content-Length": "0" } });
      if (start.status !== 202) throw await failure(start, `starting the upload of ${path.basename(file)}`, Boolean(this.authorization));
      await start.body?.cancel();
      location = start.headers.get("location") ?? "";
      limit = Number(start.headers.get("oci-chunk-max-length") ?? Infinity);
    }
    options.onBytes?.(offset);
    const chunk = Math.max(1, Math.min(options.chunkBytes ?? 64 * 1024 * 1024, limit));
    let sent = 0;
    await mkdir(this.stateDir, { recursive: true });
    while (offset < size) {
      const end = Math.min(size, offset + chunk) - 1;
      const body = Readable.toWeb(createReadStream(file, { start: offset, end, highWaterMark: 1 << 20 })) as ReadableStream<Uint8Array>;
      const counted = body.pipeThrough(
        new TransformStream<Uint8Array, Uint8Array>({
          transform(bytes, controller) {
            options.onBytes?.(bytes.byteLength);
            controller.enqueue(bytes);
          },
        }),
      );
      const res = await this.call(location, {
        method: "PATCH",
        headers: { "Content-Type": "application/octet-stream", "Content-Range": `${offset}-${end}`, "Content-Length": String(end - offset + 1) },
        body: counted,
        duplex: "half",
      } as RequestInit);
      if (res.status !== 202) throw await failure(res, `uploading ${path.basename(file)} at byte ${offset}`, Boolean(this.authorization));
      await res.body?.cancel();
      location = res.headers.get("location") ?? location;
      sent += end - offset + 1;
      offset = end + 1;
      await writeFileAtomic(stateFile, JSON.stringify({ location, offset }));
    }
    const put = await this.call(withDigest(location, this.base, digest), { method: "PUT", headers: { "Content-Length": "0" } });
    if (put.status !== 201) throw await failure(put, `finishing the upload of ${path.basename(file)}`, Boolean(this.authorization));
    await put.body?.cancel();
    await rm(stateFile, { force: true });
    return sent;
  }

  async putManifest(name: string, reference: string, bytes: Uint8Array, mediaType: string): Promise<string> {
    const res = await this.call(`/v2/${name}/manifests/${reference}`, { method: "PUT", headers: { "Content-Type": mediaType }, body: Buffer.from(bytes) });
    if (res.status !== 201) throw await failure(res, `pushing the manifest ${name}:${reference}`, Boolean(this.authorization));
    await res.body?.cancel();
    return res.headers.get("docker-content-digest") ?? "";
  }
}

export function defaultStateDir(): string {
  const base = process.env.XDG_STATE_HOME ?? path.join(os.homedir(), ".local", "state");
  return path.join(base, "shoal", "uploads");
}

/** `Range: 0-1023` → 1024 (the next offset); absent → 0. */
function rangeEnd(range: string | null): number {
  const match = /^(?:bytes=)?0-(\d+)$/.exec(range ?? "");
  return match ? Number(match[1]) + 1 : 0;
}

function withDigest(location: string, base: string, digest: string): string {
  const url = new URL(location, base);
  url.searchParams.set("digest", digest);
  return url.toString();
}

function failure(res: Response, what: string, authorized = false): Promise<CliError> {
  const hint = res.status !== 401 || what.includes("credentials") ? "" : authorized ? " (the edge refused the credentials: check the user and token)" : " (pass --token user:token or set SHOAL_TOKEN)";
  return responseError(res, what, hint);
}
