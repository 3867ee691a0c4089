import os from "node:os";
import { isIP } from "node:net";
import type { IncomingHttpHeaders } from "node:http";

/**
 * The agent's localhost ports (registry, admin) are for this host's clients, not for web pages a
 * browser on this host happens to show. Two ways a page reaches them:
 *
 * - DNS rebinding: the page's own name is made to resolve to 127.0.0.1, so the browser treats the
 *   agent as the page's origin and lets it read the answers. The request still carries the page's
 *   name in `Host`, so only names that mean this host are accepted: IP literals (a rebinding
 *   attack needs a name), `localhost`, the machine's host name, and any configured.
 * - Cross-site requests (CSRF): a page POSTs to 127.0.0.1 without reading the answer. Browsers say
 *   where a request comes from (`Origin`, `Sec-Fetch-Site`); registry clients (docker, containerd,
 *   skopeo, podman, curl) send neither. A request from another origin is refused, whatever its
 *   method: the registry port fetches with the agent's own credentials.
 *
 * Pure: headers in, a reason to refuse (or undefined) out.
 */
export function localHostNames(extra: string[] = []): Set<string> {
  return new Set(["localhost", os.hostname(), ...extra].map((n) => n.toLowerCase()));
}

export function refusalFor(headers: IncomingHttpHeaders, names: Set<string>): string | undefined {
  const host = headers.host;
  // HTTP/1.0 clients may send no Host; browsers always do.
  if (host !== undefined && !isLocalHost(hostnameOf(host), names)) return "this port answers only requests for this host's own names (Host)";
  const origin = headers.origin;
  if (origin !== undefined) {
    let from: URL | undefined;
    try {
      from = new URL(origin);
    } catch {
      from = undefined;
    }
    // "null" (sandboxed frames, file: pages) and any other origin than the one addressed.
    if (!from || from.host.toLowerCase() !== (host ?? "").toLowerCase()) return "cross-origin requests are refused";
  }
  const site = headers["sec-fetch-site"];
  if (site !== undefined && site !== "same-origin" && site !== "none") return "cross-site requests are refused";
  return undefined;
}

/** The host name of a Host header value: `[::1]:16000` → `::1`, `Localhost:1` → `localhost`. */
function hostnameOf(host: string): string {
  const value = host.trim().toLowerCase();
  if (value.startsWith("[")) {
    const end = value.indexOf("]");
    return value.slice(1, end < 0 ? undefined : end);
  }
  const colon = value.lastIndexOf(":");
  return colon >= 0 && value.indexOf(":") === colon ? value.slice(0, colon) : value;
}

function isLocalHost(hostname: string, names: Set<string>): boolean {
  // A trailing dot spells the same name ("localhost.").
  const name = hostname.endsWith(".") ? hostname.slice(0, -1) : hostname;
  return isIP(name) !== 0 || names.has(name);
}
