import { z } from "zod";

/**
 * Remote registries the edge talks to: pull-through upstreams (`SHOAL_UPSTREAMS`) and replication
 * targets (`SHOAL_REPLICATION`). Both are JSON objects from a repository prefix to a registry, given
 * as a base URL or as `{url, username, password, tagTtlSeconds}`:
 *
 *   SHOAL_UPSTREAMS='{"hub/": {"url": "https://registry-1.docker.io", "tagTtlSeconds": 300}}'
 *   SHOAL_REPLICATION='{"prod/": "https://registry.eu.example.com"}'
 *
 * `hub/library/alpine` is then `library/alpine` at Docker Hub; a tag pushed to `prod/app` is copied
 * to `app` in the EU registry.
 */
const RemoteSchema = z.union([
  z.url().transform((url) => ({ url })),
  z
    .object({
      url: z.url(),
      username: z.string().optional(),
      password: z.string().optional(),
      /** Pull-through: a cached tag is asked of the upstream again after this long. */
      tagTtlSeconds: z.number().nonnegative().optional(),
      /**
       * Hosts (`name` or `name:port`) besides the registry's own whose token realm may be asked for a
       * token with its credentials (registry-client.ts). Docker Hub's `auth.docker.io` is known.
       */
      tokenRealms: z.array(z.string().regex(/^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/, "a host name or host:port")).optional(),
    })
    .strict(),
]);

export interface Remote {
  prefix: string;
  url: string;
  username?: string;
  password?: string;
  tagTtlSeconds: number;
  tokenRealms?: string[];
}

export const DEFAULT_TAG_TTL_SECONDS = 300;

export function parseRemotes(text: string | undefined, variable: string): Remote[] {
  if (!text?.trim()) return [];
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error(`${variable} is not JSON (an object from repository prefix to registry URL)`);
  }
  const parsed = z.record(z.string().min(1), RemoteSchema).safeParse(json);
  if (!parsed.success) throw new Error(`${variable}: ${parsed.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ")}`);
  return Object.entries(parsed.data)
    .map(([prefix, remote]) => ({
      prefix,
      url: remote.url.replace(/\/+$/, ""),
      ...("username" in remote && remote.username !== undefined ? { username: remote.username } : {}),
      ...("password" in remote && remote.password !== undefined ? { password: remote.password } : {}),
      tagTtlSeconds: ("tagTtlSeconds" in remote ? remote.tagTtlSeconds : undefined) ?? DEFAULT_TAG_TTL_SECONDS,
      ...("tokenRealms" in remote && remote.tokenRealms !== undefined ? { tokenRealms: remote.tokenRealms.map((host) => host.toLowerCase()) } : {}),
    }))
    .sort((a, b) => b.prefix.length - a.prefix.length);
}

/** The remote for a repository (the longest matching prefix) and the repository's name there. */
export function remoteFor(remotes: readonly Remote[], repository: string): { remote: Remote; name: string } | undefined {
  for (const remote of remotes) {
    if (repository.startsWith(remote.prefix) && repository.length > remote.prefix.length) {
      return { remote, name: repository.slice(remote.prefix.length).replace(/^\/+/, "") };
    }
  }
  return undefined;
}
