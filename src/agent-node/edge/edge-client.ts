import { Agent as UndiciAgent, request, type Dispatcher } from "undici";
import { authorizationHeader } from "../../shared/auth/credentials.js";
import { currentRequestId } from "../request-context.js";
import { OciError, isOciErrorBody } from "../../shared/oci/errors.js";
import type { Digest } from "../../shared/oci/digest.js";
import { MetainfoSchema, type Metainfo } from "../../shared/p2p/metainfo.js";
import { AnnounceResponseSchema, type AnnounceRequest, type AnnounceResponse } from "../../shared/api/announce.js";

export interface EdgeClientOptions {
  baseUrl: string;
  /** `user:token` (sent as HTTP Basic) or a bare token (Bearer). */
  token?: string;
}

export interface EdgeManifest {
  digest: Digest;
  mediaType: string;
  body: Buffer;
}

/** The edge could not be reached or answered with a server error. */
export class EdgeUnavailableError extends Error {
  override name = "EdgeUnavailableError";
}

/**
 * The agent's HTTP client for the edge's /v2 API: manifests, blobs (whole or by Range, the web
 * seed) and raw forwarding for pushes. Keep-alive connections, no body timeout for big blobs.
 */
export class EdgeClient {
  readonly baseUrl: string;
  private readonly dispatcher: Dispatcher;
  private readonly authorization: string | undefined;
  /** Bearer tokens by scope ("" for none), and when to fetch a fresh one. */
  private readonly tokens = new Map<string, { token: string; refreshAt: number }>();
  private readonly tokenFlights = new Map<string, Promise<string | undefined>>();
  private tokenService = true;

  constructor(options: EdgeClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.dispatcher = new UndiciAgent({ connections: 64, keepAliveTimeout: 30_000, bodyTimeout: 0, headersTimeout: 30_000 });
    if (options.token) this.authorization = authorizationHeader(options.token);
  }

  headers(extra: Record<string, string> = {}): Record<string, string> {
    return this.authorization ? { ...extra, authorization: this.authorization } : extra;
  }

  /**
   * The agent's own credentials for a request: a bearer token from the edge's token service, for
   * the repository the path names (pull) or none (announces), fetched with the configured secret
   * and reused until shortly before it expires. So the edge checks a signature per request rather
   * than a secret, and the secret travels once per token. An edge without a token service (404)
   * gets the secret itself, as before.
   */
  private async ownAuthorization(path: string): Promise<string | undefined> {
    if (!this.authorization || !this.tokenService) return this.authorization;
    const repository = repositoryOfPath(path);
    const scope = repository ? `repository:${repository}:pull` : "";
    const cached = this.tokens.get(scope);
    if (cached && Date.now() < cached.refreshAt) return `Bearer ${cached.token}`;
    let flight = this.tokenFlights.get(scope);
    if (!flight) {
      flight = this.fetchToken(scope).finally(() => this.tokenFlights.delete(scope));
      this.tokenFlights.set(scope, flight);
    }
    const token = await flight;
    return token ? `Bearer ${token}` : this.authorization;
  }

  private async fetchToken(scope: string): Promise<string | undefined> {
    try {
      const res = await request(`${this.baseUrl}/token${scope ? `?scope=${encodeURIComponent(scope)}` : ""}`, {
        method: "GET",
        dispatcher: this.dispatcher,
        headers: { authorization: this.authorization! },
      });
      if (res.statusCode === 404) {
        await res.body.dump();
        this.tokenService = false;
        return undefined;
      }
      if (res.statusCode !== 200) {
        await res.body.dump();
        return undefined;
      }
      const body = (await res.body.json()) as { token?: unknown; expires_in?: unknown };
      if (typeof body.token !== "string") return undefined;
      const lifeSeconds = typeof body.expires_in === "number" && body.expires_in > 0 ? body.expires_in : 60;
      if (this.tokens.size > 1000) this.tokens.clear();
      this.tokens.set(scope, { token: body.token, refreshAt: Date.now() + lifeSeconds * 800 });
      return body.token;
    } catch {
      return undefined;
    }
  }

  /**
   * One request to the edge. `onBehalfOfClient`: a client's request passed through (a push), which
   * carries the client's own credentials only, never the agent's: the agent's token lets it read and
   * announce, and must not let anyone who reaches the agent push.
   */
  async request(
    path: string,
    options: Omit<Dispatcher.RequestOptions, "origin" | "path"> & { method: Dispatcher.HttpMethod; onBehalfOfClient?: boolean },
  ): Promise<Dispatcher.ResponseData> {
    const { onBehalfOfClient, ...rest } = options;
    const own: Record<string, string> = {};
    const authorization = onBehalfOfClient ? undefined : await this.ownAuthorization(path);
    if (authorization) own.authorization = authorization;
    const requestId = currentRequestId();
    if (requestId) own["x-request-id"] = requestId;
    try {
      const res = await request(`${this.baseUrl}${path}`, {
        ...rest,
        dispatcher: this.dispatcher,
        headers: { ...own, ...((options.headers as Record<string, string>) ?? {}) },
      });
      // A token the edge no longer takes (its key rotated away): fetch a fresh one next time.
      if (res.statusCode === 401 && authorization?.startsWith("Bearer ")) this.tokens.delete(scopeOfPath(path));
      return res;
    } catch (error) {
      throw new EdgeUnavailableError(`edge ${this.baseUrl} unreachable: ${(error as Error).message}`);
    }
  }

  async getManifest(name: string, reference: string, accept?: string): Promise<EdgeManifest> {
    const res = await this.request(`/v2/${name}/manifests/${reference}`, {
      method: "GET",
      headers: { accept: accept ?? "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json" },
    });
    if (res.statusCode !== 200) throw await this.failure(res);
    const body = Buffer.from(await res.body.arrayBuffer());
    return {
      digest: String(res.headers["docker-content-digest"] ?? "") as Digest,
      mediaType: String(res.headers["content-type"] ?? ""),
      body,
    };
  }

  /** The blob's size, or null when the edge does not have it in that repository. */
  async headBlob(name: string, digest: Digest): Promise<number | null> {
    const res = await this.request(`/v2/${name}/blobs/${digest}`, { method: "HEAD" });
    await res.body.dump();
    if (res.statusCode === 404) return null;
    if (res.statusCode !== 200) throw await this.failure(res);
    return Number(res.headers["content-length"]);
  }

  /** Opens a blob for reading (a byte range of it with `range`, as a web seed). */
  async openBlob(name: string, digest: Digest, range?: { start: number; end: number }): Promise<{ size: number; body: Dispatcher.ResponseData["body"] }> {
    const res = await this.request(`/v2/${name}/blobs/${digest}`, {
      method: "GET",
      headers: range ? { range: `bytes=${range.start}-${range.end}` } : {},
    });
    if (res.statusCode !== 200 && res.statusCode !== 206) throw await this.failure(res);
    const size = Number(res.headers["content-length"]);
    if (!Number.isSafeInteger(size)) {
      res.body.destroy();
      throw new EdgeUnavailableError(`edge sent ${digest} without a valid Content-Length`);
    }
    return { size, body: res.body };
  }

  /** Metainfo (piece length and piece hashes) of a blob in a repository, validated. */
  async getMetainfo(name: string, digest: Digest): Promise<Metainfo> {
    const res = await this.request(`/shoal/v1/${name}/metainfo/${digest}`, { method: "GET" });
    if (res.statusCode !== 200) throw await this.failure(res);
    const parsed = MetainfoSchema.safeParse(await res.body.json());
    if (!parsed.success || parsed.data.digest !== digest) throw new EdgeUnavailableError(`edge sent invalid metainfo for ${digest}`);
    return parsed.data;
  }

  async announce(request: AnnounceRequest): Promise<AnnounceResponse> {
    const res = await this.request("/shoal/v1/announce", {
      method: "POST",
      body: JSON.stringify(request),
      headers: { "content-type": "application/json" },
    });
    if (res.statusCode !== 200) throw await this.failure(res);
    return AnnounceResponseSchema.parse(await res.body.json());
  }

  /** Turns an edge error response into the OciError it carries (or a 502-ish one). */
  async failure(res: Dispatcher.ResponseData): Promise<Error> {
    const text = await res.body.text().catch(() => "");
    if (res.statusCode >= 500) return new EdgeUnavailableError(`edge answered ${res.statusCode}: ${text.slice(0, 200)}`);
    try {
      const body = JSON.parse(text) as unknown;
      if (isOciErrorBody(body)) {
        const first = body.errors[0]!;
        return new OciError(first.code, first.message, { status: res.statusCode, detail: first.detail });
      }
    } catch {
      // not JSON
    }
    return new OciError("UNKNOWN", `edge answered ${res.statusCode}`, { status: res.statusCode === 404 ? 404 : 502 });
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }
}

/** The repository a /v2 or metainfo path names, if any. */
function repositoryOfPath(path: string): string | undefined {
  const match = /^\/(?:v2|shoal\/v1)\/(.+?)\/(?:blobs|manifests|tags|referrers|metainfo)\//.exec(path.split("?")[0]!);
  return match?.[1];
}

function scopeOfPath(path: string): string {
  const repository = repositoryOfPath(path);
  return repository ? `repository:${repository}:pull` : "";
}
