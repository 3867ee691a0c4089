import type { IncomingMessage, ServerResponse } from "node:http";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Dispatcher } from "undici";
import type { Logger } from "pino";
import { OciError } from "../../shared/oci/errors.js";
import { EdgeUnavailableError, type EdgeClient } from "../edge/edge-client.js";
import { matchRoute, type Route } from "./routes.js";

/** Request headers worth passing to the edge. */
const FORWARDED_REQUEST_HEADERS = ["content-type", "content-length", "content-range", "accept", "authorization"];
const HOP_BY_HOP = new Set(["connection", "keep-alive", "transfer-encoding", "upgrade", "te", "trailer", "date"]);

/**
 * Pushes sent to the agent go to the edge. Bodies over the edge's advertised request limit
 * (`OCI-Chunk-Max-Length`) are split into several PATCH requests, so `docker push` through the
 * agent works for any layer size even though docker, podman and skopeo send a layer in one request.
 */
export class PushProxy {
  private chunkMaxBytes: number | undefined;

  constructor(
    private readonly edge: EdgeClient,
    private readonly log: Logger,
  ) {}

  /** Passes a request through to the same path at the edge and relays the answer. */
  async forward(req: IncomingMessage, res: ServerResponse, withBody: boolean): Promise<void> {
    const edgeRes = await this.send(req, req.method as Dispatcher.HttpMethod, edgePath(req), forwardedHeaders(req, withBody), withBody ? req : null);
    await relay(edgeRes, res, req);
  }

  /**
   * `GET /v2/`, the login check: answered by the edge with the client's credentials, so docker and
   * podman see the edge's challenge and log in to push through the agent. With the edge down the
   * agent still serves what it has, so it answers for itself.
   */
  async base(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let edgeRes: Dispatcher.ResponseData;
    try {
      edgeRes = await this.edge.request("/v2/", { method: "GET", headers: forwardedHeaders(req, false), onBehalfOfClient: true });
    } catch (error) {
      if (!(error instanceof EdgeUnavailableError)) throw error;
      this.log.warn({ err: error.message }, "edge unreachable: answering /v2/ for it");
      res.writeHead(200, { "content-type": "application/json", "docker-distribution-api-version": "registry/2.0" });
      return void res.end("{}");
    }
    if (edgeRes.statusCode >= 500) {
      await edgeRes.body.dump();
      res.writeHead(200, { "content-type": "application/json", "docker-distribution-api-version": "registry/2.0" });
      return void res.end("{}");
    }
    await relay(edgeRes, res, req);
  }

  /**
   * `GET /token`: the edge's token service, passed through with the client's credentials, so a
   * host's runtime logs in to its agent (`docker login localhost:16000`) and never needs the edge's
   * address; the challenges the agent relays name this realm.
   */
  async token(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const edgeRes = await this.send(req, "GET", edgePath(req), forwardedHeaders(req, false), null);
    await relay(edgeRes, res, req);
  }

  async startUpload(req: IncomingMessage, res: ServerResponse, name: string): Promise<void> {
    const url = new URL(req.url ?? "/", "http://agent");
    const digest = url.searchParams.get("digest");
    if (digest === null || !hasBody(req)) return this.forward(req, res, hasBody(req));
    // Monolithic POST ?digest=<d> with the blob: a session, chunked PATCHes, then PUT.
    const start = await this.send(req, "POST", `/v2/${name}/blobs/uploads/`, {}, null);
    if (start.statusCode !== 202) return relay(start, res, req);
    await start.body.dump();
    const location = String(start.headers.location);
    const patched = await this.appendSegments(req, location);
    if (patched.statusCode !== 202) return relay(patched, res, req);
    await patched.body.dump();
    const put = await this.send(req, "PUT", withQuery(String(patched.headers.location ?? location), "digest", digest), { "content-length": "0" }, null);
    await relay(put, res, req);
  }

  async patch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const last = await this.appendSegments(req, edgePath(req));
    await relay(last, res, req);
  }

  async put(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!hasBody(req) || req.headers["content-range"]) return this.forward(req, res, hasBody(req));
    // The closing PUT carries the last chunk: append it in segments, then close without a body.
    const patched = await this.appendSegments(req, pathOnly(edgePath(req)));
    if (patched.statusCode !== 202) return relay(patched, res, req);
    await patched.body.dump();
    const digest = new URL(req.url ?? "/", "http://agent").searchParams.get("digest") ?? "";
    const put = await this.send(req, "PUT", withQuery(String(patched.headers.location ?? pathOnly(edgePath(req))), "digest", digest), { "content-length": "0" }, null);
    await relay(put, res, req);
  }

  /**
   * Sends the request body as PATCH requests of at most the edge's limit each. A client chunk with
   * a Content-Range that fits goes through as it is.
   */
  private async appendSegments(req: IncomingMessage, location: string): Promise<Dispatcher.ResponseData> {
    const limit = await this.learnLimit(req, location);
    const declared = req.headers["content-length"] !== undefined ? Number(req.headers["content-length"]) : undefined;
    if (req.headers["content-range"] || (declared !== undefined && declared <= limit)) {
      return this.send(req, "PATCH", location, forwardedHeaders(req, true), req);
    }
    const source = new SegmentSource(req);
    let remaining = declared;
    let current = location;
    let last: Dispatcher.ResponseData | undefined;
    while (await source.hasMore()) {
      if (last) await last.body.dump();
      const length = remaining !== undefined ? Math.min(limit, remaining) : undefined;
      const headers: Record<string, string> = { "content-type": "application/octet-stream" };
      if (length !== undefined) headers["content-length"] = String(length);
      last = await this.send(req, "PATCH", current, headers, Readable.from(source.segment(limit)));
      if (last.statusCode !== 202) {
        req.resume();
        return last;
      }
      if (remaining !== undefined) remaining -= length!;
      current = String(last.headers.location ?? current);
      this.log.debug({ location: current, range: last.headers.range }, "pushed a segment to the edge");
    }
    // An empty body: one empty PATCH keeps the protocol's answer (202 with Range).
    return last ?? this.send(req, "PATCH", current, { "content-length": "0" }, null);
  }

  private async learnLimit(req: IncomingMessage, location: string): Promise<number> {
    if (this.chunkMaxBytes !== undefined) return this.chunkMaxBytes;
    const status = await this.send(req, "GET", pathOnly(location), {}, null);
    await status.body.dump();
    const header = status.headers["oci-chunk-max-length"];
    if (header === undefined) {
      if (status.statusCode === 404) throw new OciError("BLOB_UPLOAD_UNKNOWN");
      throw new OciError("UNKNOWN", "the edge did not advertise its chunk limit", { status: 502 });
    }
    return Number(header);
  }

  /**
   * One request to the edge for the client `req`: it carries the client's own credentials (taken
   * from `req`, whatever headers the request is built with: docker's chunked PATCH, the
   * monolithic POST and the closing PUT included) and never the agent's.
   */
  private async send(req: IncomingMessage, method: Dispatcher.HttpMethod, path: string, headers: Record<string, string>, body: Readable | null): Promise<Dispatcher.ResponseData> {
    try {
      const { authorization: _ignored, ...rest } = headers;
      const authorization = req.headers.authorization;
      const res = await this.edge.request(path, { method, headers: authorization ? { ...rest, authorization } : rest, body, onBehalfOfClient: true });
      const advertised = res.headers["oci-chunk-max-length"];
      if (advertised !== undefined) this.chunkMaxBytes = Number(advertised);
      return res;
    } catch (error) {
      if (error instanceof EdgeUnavailableError) {
        throw new OciError("UNKNOWN", `cannot push: ${error.message}`, { status: 503 });
      }
      throw error;
    }
  }
}

/** Reads a request body in consecutive segments of at most N bytes. */
class SegmentSource {
  private readonly iterator: AsyncIterator<Buffer>;
  private pending: Buffer | undefined;
  private ended = false;

  constructor(stream: Readable) {
    this.iterator = stream[Symbol.asyncIterator]();
  }

  async hasMore(): Promise<boolean> {
    while (!this.pending?.length && !this.ended) {
      const next = await this.iterator.next();
      if (next.done) this.ended = true;
      else this.pending = next.value;
    }
    return (this.pending?.length ?? 0) > 0;
  }

  async *segment(max: number): AsyncGenerator<Buffer> {
    let sent = 0;
    while (sent < max && (await this.hasMore())) {
      const chunk = this.pending!;
      const take = Math.min(chunk.length, max - sent);
      this.pending = take < chunk.length ? chunk.subarray(take) : undefined;
      sent += take;
      yield take < chunk.length ? chunk.subarray(0, take) : chunk;
    }
  }
}

/**
 * The path (and query) to ask the edge for `req`: rebuilt from the route the agent matched, never
 * the raw `req.url`. The agent routes on the parsed, percent-decoded path; the raw form could mean
 * something else at the edge (`a%2Fb` is one segment there, two here; dot segments, a fragment), so
 * the edge is asked exactly what the agent decided it was asked.
 */
export function edgePath(req: IncomingMessage): string {
  const url = new URL(req.url ?? "/", "http://agent");
  return `${routePath(matchRoute(url.pathname))}${url.search}`;
}

function routePath(route: Route): string {
  // Percent-encoded but for the characters digests and tags use (`sha256:…`, `sha256+b64:…`).
  const segment = (text: string) => encodeURIComponent(text).replace(/%3A/gi, ":").replace(/%2B/gi, "+");
  switch (route.kind) {
    case "base":
      return "/v2/";
    case "token":
      return "/token";
    case "catalog":
      return "/v2/_catalog";
    case "manifest":
      return `/v2/${route.name}/manifests/${segment(route.reference)}`;
    case "blob":
      return `/v2/${route.name}/blobs/${segment(route.digest)}`;
    case "uploads":
      return `/v2/${route.name}/blobs/uploads/`;
    case "upload":
      return `/v2/${route.name}/blobs/uploads/${segment(route.id)}`;
    case "tags":
      return `/v2/${route.name}/tags/list`;
    case "referrers":
      return `/v2/${route.name}/referrers/${segment(route.digest)}`;
    case "namespace-blob":
      return `/v2/${route.namespace}/blobs/${segment(route.digest)}`;
  }
}

function hasBody(req: IncomingMessage): boolean {
  const length = req.headers["content-length"];
  return (length !== undefined && Number(length) > 0) || req.headers["transfer-encoding"] !== undefined;
}

function forwardedHeaders(req: IncomingMessage, withBody: boolean): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of FORWARDED_REQUEST_HEADERS) {
    const value = req.headers[name];
    if (typeof value === "string") out[name] = value;
  }
  if (!withBody) out["content-length"] = "0";
  return out;
}

async function relay(edgeRes: Dispatcher.ResponseData, res: ServerResponse, req: IncomingMessage): Promise<void> {
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(edgeRes.headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(name)) headers[name] = value;
  }
  const challenge = headers["www-authenticate"];
  if (typeof challenge === "string") headers["www-authenticate"] = withAgentRealm(challenge, req);
  res.writeHead(edgeRes.statusCode, headers);
  await pipeline(edgeRes.body, res);
}

/** The edge's challenge with its realm moved to this agent's `/token` (which passes requests on to the edge's). */
export function withAgentRealm(challenge: string, req: IncomingMessage): string {
  return challenge.replace(/realm="[^"]*"/, `realm="${agentRealm(req)}"`);
}

export function agentRealm(req: IncomingMessage): string {
  const host = req.headers.host && /^[A-Za-z0-9.:[\]-]+$/.test(req.headers.host) ? req.headers.host : "localhost";
  return `http://${host}/token`;
}

function pathOnly(url: string): string {
  return url.split("?")[0]!;
}

function withQuery(location: string, key: string, value: string): string {
  const url = new URL(location, "http://edge");
  url.searchParams.set(key, value);
  return `${url.pathname}${url.search}`;
}
