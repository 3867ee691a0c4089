/**
 * Which peer addresses a tracker may accept and hand out, and an agent may dial. Announced
 * addresses are self-declared: without this check an announcer could point a whole swarm at a
 * host's loopback services or the cloud metadata endpoint (169.254.169.254). Private ranges
 * (10/8, 172.16/12, 192.168/16, fc00::/7) are where clusters live and stay allowed.
 */

export interface AddressPolicy {
  /** Loopback peers (127.0.0.0/8, ::1): for a devcluster and tests, which run on one host. */
  allowLoopback: boolean;
}

/** The 8 groups of an IPv6 address (or of an IPv4-mapped one), or undefined when it is not one. */
export function parseIpv6(text: string): number[] | undefined {
  let value = text.toLowerCase();
  if (value.includes(".")) {
    // An embedded IPv4 tail (::ffff:1.2.3.4) becomes its two groups.
    const lastColon = value.lastIndexOf(":");
    const v4 = parseIpv4(value.slice(lastColon + 1));
    if (!v4 || lastColon < 0) return undefined;
    value = `${value.slice(0, lastColon + 1)}${((v4[0]! << 8) | v4[1]!).toString(16)}:${((v4[2]! << 8) | v4[3]!).toString(16)}`;
  }
  const halves = value.split("::");
  if (halves.length > 2) return undefined;
  const groups = (part: string) => (part === "" ? [] : part.split(":"));
  const parse = (g: string) => (/^[0-9a-f]{1,4}$/.test(g) ? parseInt(g, 16) : Number.NaN);
  const head = groups(halves[0]!).map(parse);
  const rest = halves.length === 2 ? groups(halves[1]!).map(parse) : [];
  if ([...head, ...rest].some(Number.isNaN)) return undefined;
  const missing = 8 - head.length - rest.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  return [...head, ...new Array<number>(missing).fill(0), ...rest];
}

export function parseIpv4(text: string): number[] | undefined {
  const parts = text.split(".");
  if (parts.length !== 4 || parts.some((p) => !/^(0|[1-9]\d{0,2})$/.test(p) || Number(p) > 255)) return undefined;
  return parts.map(Number);
}

/** Why an address must not be dialled or handed out, or undefined when it may be. */
export function refusedAddress(ip: string, policy: AddressPolicy): string | undefined {
  const v4 = parseIpv4(ip);
  if (v4) return refusedIpv4(v4, policy);
  const v6 = parseIpv6(ip);
  if (!v6) return "not an IP address";
  // IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible forms reach the IPv4 address.
  if (v6.slice(0, 5).every((g) => g === 0) && (v6[5] === 0xffff || (v6[5] === 0 && (v6[6] !== 0 || v6[7]! > 1)))) {
    return refusedIpv4([v6[6]! >> 8, v6[6]! & 255, v6[7]! >> 8, v6[7]! & 255], policy);
  }
  if (v6.every((g) => g === 0)) return "the unspecified address";
  if (v6.slice(0, 7).every((g) => g === 0) && v6[7] === 1) return policy.allowLoopback ? undefined : "a loopback address";
  if ((v6[0]! & 0xffc0) === 0xfe80) return "a link-local address";
  if ((v6[0]! & 0xff00) === 0xff00) return "a multicast address";
  // AWS's IPv6 instance metadata endpoint, fd00:ec2::254.
  if (v6[0] === 0xfd00 && v6[1] === 0x0ec2 && v6.slice(2, 7).every((g) => g === 0) && v6[7] === 0x254) return "a metadata address";
  return undefined;
}

function refusedIpv4([a, b, c, d]: number[], policy: AddressPolicy): string | undefined {
  if (a === 0) return "the unspecified address";
  if (a === 127) return policy.allowLoopback ? undefined : "a loopback address";
  if (a === 169 && b === 254) return "a link-local address (cloud metadata lives there)";
  if (a! >= 224) return "a multicast, reserved or broadcast address";
  // Other clouds' metadata endpoints outside link-local (Alibaba, Oracle's legacy one).
  if ((a === 100 && b === 100 && c === 100 && d === 200) || (a === 192 && b === 0 && c === 0 && d === 192)) return "a metadata address";
  return undefined;
}

/**
 * The identity an unauthenticated announce counts against: its source address, IPv6 by its /64
 * (a host is usually given a whole /64, so one address per peer would be no limit at all).
 */
export function sourceIdentity(ip: string): string {
  const v6 = ip.includes(":") ? parseIpv6(ip) : undefined;
  if (v6) {
    const mapped = v6.slice(0, 5).every((g) => g === 0) && v6[5] === 0xffff;
    if (mapped) return `address:${v6[6]! >> 8}.${v6[6]! & 255}.${v6[7]! >> 8}.${v6[7]! & 255}`;
    return `address:${v6.slice(0, 4).map((g) => g.toString(16)).join(":")}::/64`;
  }
  return `address:${ip}`;
}
