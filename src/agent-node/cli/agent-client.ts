import type { AgentStatus } from "../admin/status.js";
import { Readable } from "node:stream";
import type { ReadableStream as WebReadableStream } from "node:stream/web";
import { computeDigest, parseDigest, type Digest } from "../../shared/oci/digest.js";
import { MANIFEST_MEDIA_TYPES } from "../../shared/oci/media-types.js";
import { parseManifest, type ParsedManifest } from "../../shared/oci/manifest.js";
import { cliDispatcher, describeTimeout } from "./http.js";
import { CliError, responseError } from "./cli-error.js";

export type { AgentStatus };

export interface FetchedManifest {
  digest: Digest;
  mediaType: string;
  bytes: Buffer;
  parsed: ParsedManifest;
}

/**
 * What the CLI asks of a running agent: its registry port (manifests, blobs) and its admin port
 * (status, metrics, preheat). Every failure becomes a one-line CliError that says what to check.
 */
export class AgentClient {
  readonly registry: string;
  readonly admin: string;

  constructor(registry: string, admin: string) {
    this.registry = registry.replace(/\/+$/, "");
    this.admin = admin.replace(/\/+$/, "");
  }

  /** The admin URL from the registry URL when none is given: the agent's ports are registry, peer, admin (16000, 16001, 16002). */
  static defaultAdmin(registry: string): string {
    const url = new URL(registry);
    url.port = String(Number(url.port || (url.protocol === "https:" ? 443 : 80)) + 2);
    return url.origin;
  }

  async manifest(name: string, reference: string): Promise<FetchedManifest> {
    const res = await this.call(this.registry, `/v2/${name}/manifests/${reference}`, { headers: { accept: MANIFEST_MEDIA_TYPES.join(", ") } });
    if (!res.ok) throw await responseError(res, `${name}:${reference}`);
    const bytes = Buffer.from(await res.arrayBuffer());
    const mediaType = res.headers.get("content-type") ?? "";
    const digest = await computeDigest(bytes, "sha256");
    const claimed = res.headers.get("docker-content-digest");
    if (claimed && parseDigest(claimed) !== digest) throw new CliError(`the agent sent a manifest for ${name}:${reference} that hashes to ${digest}, not ${claimed}`);
    try {
      return { digest, mediaType, bytes, parsed: parseManifest(bytes, mediaType) };
    } catch (error) {
      throw new CliError(`${name}:${reference} is not a manifest Shoal can read: ${(error as Error).message}`);
    }
  }

  /** A blob's bytes as a stream (the caller verifies the digest). */
  async blob(name: string, digest: string): Promise<Readable> {
    const res = await this.call(this.registry, `/v2/${name}/blobs/${digest}`);
    if (!res.ok || !res.body) throw await responseError(res, `${name}@${digest}`);
    return Readable.fromWeb(res.body as WebReadableStream<Uint8Array>);
  }

  async status(): Promise<AgentStatus> {
    const res = await this.call(this.admin, "/v1/status");
    if (!res.ok) throw new CliError(`the agent's admin server at ${this.admin} answered ${res.status}`);
    return (await res.json()) as AgentStatus;
  }

  /** `shoal_agent_bytes_downloaded_total` by source. */
  async bytesBySource(): Promise<{ peer: number; origin: number }> {
    const res = await this.call(this.admin, "/metrics");
    const text = await res.text();
    const value = (source: string) => Number(new RegExp(`^shoal_agent_bytes_downloaded_total\\{source="${source}"\\} (\\S+)$`, "m").exec(text)?.[1] ?? 0);
    return { peer: value("peer"), origin: value("origin") };
  }

  async preheat(image: string): Promise<PreheatProgress> {
    const res = await this.call(this.admin, "/v1/preheat", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ image }) });
    const body = (await res.json().catch(() => ({}))) as PreheatProgress & { error?: string };
    if (!res.ok) throw new CliError(`preheat of ${image} at ${this.admin} failed: ${body.error ?? `HTTP ${res.status}`}`);
    return body;
  }

  /** Has the agent hash its stored copy of a blob again; a damaged one is dropped from its store. */
  async verifyStored(digest: string): Promise<{ digest: string; state: string }> {
    const res = await this.call(this.admin, "/v1/store/verify", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ digest }) });
    if (!res.ok) throw new CliError(`the agent at ${this.admin} could not verify ${digest}: HTTP ${res.status}`);
    return (await res.json()) as { digest: string; state: string };
  }

  private async call(base: string, path: string, init: RequestInit = {}): Promise<Response> {
    try {
      return await fetch(`${base}${path}`, { ...init, dispatcher: cliDispatcher() } as RequestInit);
    } catch (error) {
      const timeout = describeTimeout(error);
      if (timeout) throw new CliError(`the agent at ${base} did not answer ${init.method ?? "GET"} ${path}: ${timeout}`);
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      throw new CliError(`cannot reach the agent at ${base} (${cause?.code ?? cause?.message ?? (error as Error).message}): is it running? (shoal agent, or --agent URL)`);
    }
  }
}

export interface PreheatProgress {
  image: string;
  digest: string;
  blobs: { digest: string; size: number; state: "stored" | "fetching" | "failed"; written: number; error?: string }[];
  done: boolean;
}

