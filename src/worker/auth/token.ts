import { sign, verify } from "hono/jwt";
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex } from "@noble/hashes/utils.js";
import type { Grant } from "../../shared/auth/scope.js";

/**
 * The edge's bearer tokens (distribution token spec, "Token Authentication Implementation"): a JWT
 * with `iss`/`aud` = the service name, `sub` = the account ("" for anonymous), `exp`/`nbf`/`iat`,
 * `jti`, and `access`: the grants, `[{type, name, actions}]`. HS256 with a key from the
 * `SHOAL_TOKEN_KEYS` secret, verified with Web Crypto (hono/jwt). Rotation: the first key signs,
 * every listed key verifies, so a new key goes first and the old one stays until its tokens expire.
 */
export interface TokenClaims {
  sub: string;
  access: Grant[];
  exp: number;
  iat: number;
}

/** Refuses keys a guess could find: at least 32 characters, not one character repeated. */
export const MIN_KEY_CHARS = 32;

export function parseTokenKeys(value: string): string[] {
  const keys = value
    .split(",")
    .map((k) => k.trim())
    .filter(Boolean);
  if (keys.length === 0) throw new Error("SHOAL_TOKEN_KEYS lists no key");
  for (const [i, key] of keys.entries()) {
    if (key.length < MIN_KEY_CHARS || new Set(key).size < 8) throw new Error(`SHOAL_TOKEN_KEYS: key ${i + 1} is weak (needs ${MIN_KEY_CHARS}+ characters of a random secret, e.g. openssl rand -hex 32)`);
  }
  return keys;
}

/**
 * Without SHOAL_TOKEN_KEYS, a key derived from the account secrets (as strong as they are; they
 * are checked for length): every edge isolate derives the same one, and changing a secret revokes
 * the tokens out. Production sets SHOAL_TOKEN_KEYS to rotate the key on its own.
 */
export function derivedTokenKey(material: string): string {
  return bytesToHex(sha256(new TextEncoder().encode(`shoal token key\0${material}`)));
}

export async function signToken(key: string, service: string, claims: { sub: string; access: Grant[] }, ttlSeconds: number, nowSeconds: number): Promise<string> {
  const payload = {
    iss: service,
    aud: service,
    sub: claims.sub,
    access: claims.access,
    iat: nowSeconds,
    nbf: nowSeconds - 10,
    exp: nowSeconds + ttlSeconds,
    jti: crypto.randomUUID(),
  };
  return sign(payload, key, "HS256");
}

/** The claims of a token one of the keys signed for this service, or undefined (bad, expired, foreign). */
export async function verifyToken(token: string, keys: readonly string[], service: string): Promise<TokenClaims | undefined> {
  for (const key of keys) {
    try {
      const payload = await verify(token, key, { alg: "HS256", iss: service, aud: service });
      if (typeof payload.sub !== "string" || !Array.isArray(payload.access) || typeof payload.exp !== "number") return undefined;
      return payload as unknown as TokenClaims;
    } catch {
      // not this key (or not valid at all): try the next
    }
  }
  return undefined;
}

export function looksLikeJwt(token: string): boolean {
  return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(token);
}
