/**
 * Scopes and challenges of the distribution token-authentication spec (docs/spec/auth/scope.md):
 * a scope is `type:name:actions`, e.g. `repository:team/app:pull,push`; the name may hold
 * colons (a registry host with a port), so type is before the first colon and actions after the last.
 */
export interface Scope {
  type: string;
  name: string;
  actions: string[];
}

/** A granted access entry, as the token's `access` claim carries it (the same shape). */
export type Grant = Scope;

export function parseScope(text: string): Scope | undefined {
  const first = text.indexOf(":");
  const last = text.lastIndexOf(":");
  if (first <= 0 || last === first) return undefined;
  const type = text.slice(0, first);
  const name = text.slice(first + 1, last);
  const actions = text
    .slice(last + 1)
    .split(",")
    .map((a) => a.trim())
    .filter(Boolean);
  if (!name || actions.length === 0) return undefined;
  return { type, name, actions };
}

/** Every scope in `scope` query parameters (each may list several, space-separated). */
export function parseScopes(values: readonly string[]): Scope[] {
  return values.flatMap((value) => value.split(" ").filter(Boolean)).flatMap((text) => parseScope(text) ?? []);
}

export function formatScope(scope: Scope): string {
  return `${scope.type}:${scope.name}:${scope.actions.join(",")}`;
}

/**
 * The `WWW-Authenticate` value that sends a client to the token service; with `error`, the spec's
 * answer to a token that lacks the scope (`insufficient_scope`) or is bad (`invalid_token`).
 */
export function bearerChallenge(realm: string, service: string, scope?: Scope | Scope[], error?: "insufficient_scope" | "invalid_token"): string {
  const parts = [`realm="${realm}"`, `service="${service}"`];
  // Several scopes go space-separated in one parameter (a cross-repository mount needs two).
  const scopes = scope === undefined ? [] : Array.isArray(scope) ? scope : [scope];
  if (scopes.length) parts.push(`scope="${scopes.map(formatScope).join(" ")}"`);
  if (error) parts.push(`error="${error}"`);
  return `Bearer ${parts.join(",")}`;
}

/** Does a grant list allow `action` on `type:name`? (`*` among actions: all of them.) */
export function grantsAllow(grants: readonly Grant[], type: string, name: string, action: string): boolean {
  return grants.some((g) => g.type === type && g.name === name && (g.actions.includes(action) || g.actions.includes("*")));
}
