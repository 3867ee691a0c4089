import type { Remote } from "./config.js";

/**
 * A client for another OCI registry (Web-standard fetch only): requests with the remote's
 * credentials, and the token dance Docker Hub, GHCR and distribution's token auth use — a 401 with
 * `WWW-Authenticate: Bearer realm=…,service=…,scope=…` is answered by fetching a token from the realm
 * (with the basic credentials, if any) and asking again. Tokens are reused per scope until they expire.
 *
 * The realm is the remote's word, so it is trusted only as far as the remote's own host: a realm on
 * another host is asked only when the remote's `tokenRealms` names that host (Docker Hub's
 * `auth.docker.io` is known), and never over plain HTTP for a remote reached over HTTPS. Anything
 * else is refused before a byte is sent there, so a remote (or whoever answers for it) cannot have
 * the edge send its credentials, or any request, to a host of its choosing.
 */
export class RegistryClient {
  private readonly tokens = new Map<string, { token: string; expiresAt: number }>();

  constructor(private readonly remote: Remote) {}

  get base(): string {
    return this.remote.url;
  }

  async request(path: string, init: RequestInit & { scope: string }): Promise<Response> {
    const { scope, ...rest } = init;
    const cached = this.tokens.get(scope);
    const first = await this.send(`${this.remote.url}${path}`, this.withAuth(rest, cached && cached.expiresAt > Date.now() ? `Bearer ${cached.token}` : this.basic()));
    if (first.status !== 401) return first;
    const challenge = first.headers.get("www-authenticate") ?? "";
    await first.body?.cancel();
    let authorization: string | undefined;
    if (/^bearer\s/i.test(challenge)) {
      authorization = `Bearer ${await this.token(challenge, scope)}`;
    } else if (/^basic\s/i.test(challenge) && this.basic()) {
      authorization = this.basic();
    } else {
      return new Response(null, { status: 401, statusText: `the registry at ${this.remote.url} needs credentials` });
    }
    if (rest.body instanceof ReadableStream) {
      // A stream cannot be sent twice: the caller retries with a fresh body.
      return new Response(null, { status: 401, headers: { "x-shoal-retry": "1" } });
    }
    return this.send(`${this.remote.url}${path}`, this.withAuth(rest, authorization));
  }

  /**
   * fetch with redirects followed here, not by the runtime: registries send blob reads to a CDN or a
   * presigned storage URL, and the Authorization meant for the remote must not go along to another
   * host (it is dropped there; a presigned URL carries its own). Only reads are followed; anything
   * else answers with the redirect itself.
   */
  private async send(url: string, init: RequestInit): Promise<Response> {
    const method = (init.method ?? "GET").toUpperCase();
    const own = new URL(this.remote.url).host;
    let current = new URL(url);
    let headers = new Headers(init.headers);
    for (let hop = 0; ; hop++) {
      const res = await fetch(current, { ...init, headers, redirect: "manual" });
      const location = res.headers.get("location");
      if (![301, 302, 303, 307, 308].includes(res.status) || !location || (method !== "GET" && method !== "HEAD")) return res;
      await res.body?.cancel();
      if (hop === MAX_REDIRECTS) throw new UpstreamError(`the registry at ${this.remote.url} redirected ${MAX_REDIRECTS} times`);
      const next = new URL(location, current);
      if (next.protocol !== "https:" && next.protocol !== "http:") throw new UpstreamError(`the registry at ${this.remote.url} redirected to ${next.protocol}`);
      if (next.host !== own || (current.protocol === "https:" && next.protocol !== "https:")) {
        headers = new Headers(headers);
        headers.delete("authorization");
      }
      current = next;
    }
  }

  private basic(): string | undefined {
    if (this.remote.username === undefined) return undefined;
    return `Basic ${btoa(`${this.remote.username}:${this.remote.password ?? ""}`)}`;
  }

  private withAuth(init: RequestInit, authorization: string | undefined): RequestInit {
    const headers = new Headers(init.headers);
    if (authorization) headers.set("Authorization", authorization);
    return { ...init, headers };
  }

  /** The realm as a URL, if the edge may ask it for a token with this remote's credentials. */
  private allowedRealm(realm: string): URL {
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new UpstreamError(`the registry at ${this.remote.url} named a token realm that is not a URL`);
    }
    const own = new URL(this.remote.url);
    const hosts = new Set([own.host, ...(this.remote.tokenRealms ?? []), ...(KNOWN_TOKEN_HOSTS[own.host] ?? [])]);
    const downgrade = own.protocol === "https:" && url.protocol !== "https:";
    if (!hosts.has(url.host) || downgrade || (url.protocol !== "https:" && url.protocol !== "http:") || url.username || url.password) {
      throw new UpstreamError(
        `the registry at ${this.remote.url} asks for a token from ${url.origin}, which is not its own host: ` +
          (downgrade ? "refused (plain HTTP for an HTTPS registry)" : `refused (add "${url.host}" to its tokenRealms if that service is trusted)`),
      );
    }
    return url;
  }

  private async token(challenge: string, scope: string): Promise<string> {
    const params = Object.fromEntries([...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!.toLowerCase(), m[2]!]));
    if (!params.realm) throw new UpstreamError(`the registry at ${this.remote.url} asked for a token without a realm`);
    const url = this.allowedRealm(params.realm);
    if (params.service) url.searchParams.set("service", params.service);
    url.searchParams.set("scope", params.scope ?? scope);
    const basic = this.basic();
    // No redirects: they would carry the credentials to wherever the token service points.
    const res = await fetch(url, { redirect: "manual", ...(basic ? { headers: { Authorization: basic } } : {}) });
    if (!res.ok) throw new UpstreamError(`the token service ${url.origin} answered ${res.status}`, res.status === 401 || res.status === 403 ? 401 : 502);
    const body = (await res.json()) as { token?: string; access_token?: string; expires_in?: number };
    const token = body.token ?? body.access_token;
    if (!token) throw new UpstreamError(`the token service ${url.origin} sent no token`);
    this.tokens.set(scope, { token, expiresAt: Date.now() + Math.max(30, (body.expires_in ?? 60) - 10) * 1000 });
    return token;
  }
}

const MAX_REDIRECTS = 5;

/** Token services on another host than their registry that are known to belong to it. */
const KNOWN_TOKEN_HOSTS: Record<string, string[]> = {
  "registry-1.docker.io": ["auth.docker.io"],
  "index.docker.io": ["auth.docker.io"],
  "docker.io": ["auth.docker.io"],
};

/** The remote registry failed or is unreachable (status: what the edge should answer). */
export class UpstreamError extends Error {
  override name = "UpstreamError";

  constructor(
    message: string,
    readonly status = 502,
  ) {
    super(message);
  }
}

/** A fetch that failed before any answer (down, refused, DNS) or a 5xx: the remote is unavailable. */
export async function reach(call: () => Promise<Response>, what: string): Promise<Response> {
  let res: Response;
  try {
    res = await call();
  } catch (error) {
    // A refusal of the client's own (a token realm it will not ask) is not the remote being down.
    if (error instanceof UpstreamError) throw error;
    throw new UpstreamError(`${what}: ${(error as Error).message}`, 503);
  }
  if (res.status >= 500) {
    await res.body?.cancel();
    throw new UpstreamError(`${what}: answered ${res.status}`, 503);
  }
  return res;
}
