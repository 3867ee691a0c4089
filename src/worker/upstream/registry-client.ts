import type { Remote } from "./config.js";

/**
 * A client for another OCI registry (Web-standard fetch only): requests with the remote's
 * credentials, and the token dance Docker Hub, GHCR and distribution's token auth use — a 401 with
 * `WWW-Authenticate: Bearer realm=…,service=…,scope=…` is answered by fetching a token from the realm
 * (with the basic credentials, if any) and asking again. Tokens are reused per scope until they expire.
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
    const first = await fetch(`${this.remote.url}${path}`, this.withAuth(rest, cached && cached.expiresAt > Date.now() ? `Bearer ${cached.token}` : this.basic()));
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
    return fetch(`${this.remote.url}${path}`, this.withAuth(rest, authorization));
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

  private async token(challenge: string, scope: string): Promise<string> {
    const params = Object.fromEntries([...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!.toLowerCase(), m[2]!]));
    if (!params.realm) throw new UpstreamError(`the registry at ${this.remote.url} asked for a token without a realm`);
    const url = new URL(params.realm);
    if (params.service) url.searchParams.set("service", params.service);
    url.searchParams.set("scope", params.scope ?? scope);
    const basic = this.basic();
    const res = await fetch(url, basic ? { headers: { Authorization: basic } } : {});
    if (!res.ok) throw new UpstreamError(`the token service ${url.origin} answered ${res.status}`, res.status === 401 || res.status === 403 ? 401 : 502);
    const body = (await res.json()) as { token?: string; access_token?: string; expires_in?: number };
    const token = body.token ?? body.access_token;
    if (!token) throw new UpstreamError(`the token service ${url.origin} sent no token`);
    this.tokens.set(scope, { token, expiresAt: Date.now() + Math.max(30, (body.expires_in ?? 60) - 10) * 1000 });
    return token;
  }
}

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
    throw new UpstreamError(`${what}: ${(error as Error).message}`, 503);
  }
  if (res.status >= 500) {
    await res.body?.cancel();
    throw new UpstreamError(`${what}: answered ${res.status}`, 503);
  }
  return res;
}
