import { sha256 } from "@noble/hashes/sha2.js";

/**
 * Push/pull credentials (Web-standard code: shared by the edge on Workers and Deno and by the
 * agent). A token list is `user:token` pairs; a client proves one with HTTP Basic (`docker login`)
 * or presents the token alone as a Bearer token.
 */
export interface Credential {
  user: string;
  token: string;
}

/** Parses `SHOAL_PUSH_TOKENS` (`user:token,user2:token2`); throws on a malformed entry. */
export function parseTokenList(value: string): Credential[] {
  const credentials: Credential[] = [];
  for (const raw of value.split(",")) {
    const entry = raw.trim();
    if (!entry) continue;
    const colon = entry.indexOf(":");
    const user = colon > 0 ? entry.slice(0, colon) : "";
    const token = colon > 0 ? entry.slice(colon + 1) : "";
    if (!user || !token) throw new Error(`a token entry must be user:token (entry ${credentials.length + 1} is not)`);
    if (token.length < 16) throw new Error(`the token of ${user} is shorter than 16 characters`);
    credentials.push({ user, token });
  }
  return credentials;
}

/** What an Authorization header carries. "anonymous": none, or Basic with an empty user and password (what podman sends without a login). */
export type Presented = { kind: "anonymous" } | { kind: "basic"; user: string; token: string } | { kind: "bearer"; token: string } | { kind: "malformed" };

export function parseAuthorization(header: string | null | undefined): Presented {
  if (!header) return { kind: "anonymous" };
  const space = header.indexOf(" ");
  const scheme = (space > 0 ? header.slice(0, space) : header).toLowerCase();
  const value = space > 0 ? header.slice(space + 1).trim() : "";
  if (scheme === "bearer") return value ? { kind: "bearer", token: value } : { kind: "malformed" };
  if (scheme !== "basic") return { kind: "malformed" };
  let decoded: string;
  try {
    decoded = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(Uint8Array.from(atob(value), (c) => c.charCodeAt(0)));
  } catch {
    return { kind: "malformed" };
  }
  const colon = decoded.indexOf(":");
  if (colon < 0) return { kind: "malformed" };
  const user = decoded.slice(0, colon);
  const token = decoded.slice(colon + 1);
  if (!user && !token) return { kind: "anonymous" };
  return { kind: "basic", user, token };
}

/**
 * The credential the header proves, if any. Every configured entry is compared, each in constant
 * time over SHA-256 digests, so neither which entry nor how much of it matched shows in the timing.
 */
export function authenticate(presented: Presented, credentials: readonly Credential[]): Credential | undefined {
  if (presented.kind !== "basic" && presented.kind !== "bearer") return undefined;
  const token = digestOf(presented.token);
  const user = presented.kind === "basic" ? digestOf(presented.user) : undefined;
  let found: Credential | undefined;
  for (const credential of credentials) {
    const tokenOk = constantTimeEqual(token, digestOf(credential.token));
    const userOk = user ? constantTimeEqual(user, digestOf(credential.user)) : true;
    if (tokenOk && userOk && !found) found = credential;
  }
  return found;
}

/** The Authorization header for a configured secret: `user:token` as Basic, a bare token as Bearer. */
export function authorizationHeader(secret: string): string {
  if (!secret.includes(":")) return `Bearer ${secret}`;
  const bytes = new TextEncoder().encode(secret);
  return `Basic ${btoa(String.fromCharCode(...bytes))}`;
}

/** Equal-length byte arrays compared without an early exit. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

function digestOf(text: string): Uint8Array {
  return sha256(new TextEncoder().encode(text));
}
