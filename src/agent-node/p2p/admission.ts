import { isIPv4, isIPv6 } from "node:net";
import { WIRE_ERROR } from "../../shared/p2p/wire/frames.js";
import type { PeerConnection } from "./peer-connection.js";

/**
 * Who gets a slot on the peer port. A connection is "waiting" from accept until its handshake
 * (with a cluster secret: its proof) is through, then "established". The two have separate
 * budgets, so hosts that never authenticate cannot take the slots real peers need:
 *
 * - established: at most `maxConnections` (128), as before;
 * - waiting: at most `maxWaiting` (64) in all and `maxWaitingPerPrefix` (32) per IPv4 /24 or IPv6
 *   /64 (one attacker rarely has many networks; addresses within one are cheap). A newcomer over
 *   either limit pushes out the oldest waiting connection (of its network, or of all) instead of
 *   being refused: a real peer's handshake takes a round trip, so to keep it out an attacker must
 *   open connections faster than that, all the time;
 * - per address: at most `maxPerAddress` (16), waiting and established together;
 * - a waiting connection has `deadlineMs` in all to finish its handshake (not per frame).
 *
 * `AdmissionBook` is the bookkeeping, pure; `admitPeer` ties it to a connection and a timer.
 */
export interface AdmissionLimits {
  maxConnections: number;
  maxPerAddress: number;
  maxWaiting: number;
  maxWaitingPerPrefix: number;
}

export const ADMISSION_DEFAULTS: AdmissionLimits = { maxConnections: 128, maxPerAddress: 16, maxWaiting: 64, maxWaitingPerPrefix: 32 };

/** The network an address belongs to for the waiting budget: its IPv4 /24 or IPv6 /64. */
export function networkOf(address: string): string {
  const host = address.toLowerCase().replace(/%.*$/, "");
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(host);
  const v4 = mapped ? mapped[1]! : host;
  if (isIPv4(v4)) return `${v4.split(".").slice(0, 3).join(".")}.0/24`;
  if (!isIPv6(host)) return host;
  // Expand "::" to the missing groups, then keep the first four.
  const [head, tail] = host.includes("::") ? host.split("::") : [host, undefined];
  const left = head ? head.split(":") : [];
  const right = tail === undefined ? [] : tail ? tail.split(":") : [];
  // An embedded IPv4 tail (::1.2.3.4) is two groups; it never reaches the first four unless the head is short.
  const rightGroups = right.flatMap((g) => (g.includes(".") ? ["0", "0"] : [g]));
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - rightGroups.length).fill("0"), ...rightGroups];
  return `${groups.slice(0, 4).map((g) => Number.parseInt(g || "0", 16).toString(16)).join(":")}::/64`;
}

export interface Ticket {
  readonly address: string;
  readonly network: string;
  state: "waiting" | "established" | "gone";
}

export type Admit = { ticket: Ticket; evicted: Ticket[] } | { refused: string };

export class AdmissionBook {
  private readonly byAddress = new Map<string, number>();
  /** Waiting tickets in arrival order, all and per network (Set keeps insertion order). */
  private readonly waiting = new Set<Ticket>();
  private readonly waitingByNetwork = new Map<string, Set<Ticket>>();
  private established = 0;

  constructor(private readonly limits: AdmissionLimits = ADMISSION_DEFAULTS) {}

  get counts(): { waiting: number; established: number } {
    return { waiting: this.waiting.size, established: this.established };
  }

  /** A connection was accepted: a waiting ticket (maybe pushing out older waiting ones), or why not. */
  admit(address: string): Admit {
    if ((this.byAddress.get(address) ?? 0) >= this.limits.maxPerAddress) return { refused: "too many connections from this address" };
    const ticket: Ticket = { address, network: networkOf(address), state: "waiting" };
    const evicted: Ticket[] = [];
    const ofNetwork = this.waitingByNetwork.get(ticket.network);
    if (ofNetwork && ofNetwork.size >= this.limits.maxWaitingPerPrefix) evicted.push(ofNetwork.values().next().value!);
    else if (this.waiting.size >= this.limits.maxWaiting) evicted.push(this.waiting.values().next().value!);
    for (const old of evicted) this.release(old);
    this.byAddress.set(address, (this.byAddress.get(address) ?? 0) + 1);
    this.waiting.add(ticket);
    const set = this.waitingByNetwork.get(ticket.network) ?? new Set<Ticket>();
    set.add(ticket);
    this.waitingByNetwork.set(ticket.network, set);
    return { ticket, evicted };
  }

  /** The handshake is through: moves the ticket to the established budget, or says why not. */
  establish(ticket: Ticket): string | undefined {
    if (ticket.state !== "waiting") return "the connection is gone";
    if (this.established >= this.limits.maxConnections) return "too many connections";
    this.unwait(ticket);
    ticket.state = "established";
    this.established++;
    return undefined;
  }

  /** The connection closed (or was pushed out): its slots are free. Idempotent. */
  release(ticket: Ticket): void {
    if (ticket.state === "gone") return;
    if (ticket.state === "waiting") this.unwait(ticket);
    else this.established--;
    ticket.state = "gone";
    const n = (this.byAddress.get(ticket.address) ?? 1) - 1;
    if (n <= 0) this.byAddress.delete(ticket.address);
    else this.byAddress.set(ticket.address, n);
  }

  private unwait(ticket: Ticket): void {
    this.waiting.delete(ticket);
    const set = this.waitingByNetwork.get(ticket.network);
    set?.delete(ticket);
    if (set?.size === 0) this.waitingByNetwork.delete(ticket.network);
  }
}

/**
 * The peer server's accept path: books the connection, arms its handshake deadline, refuses what
 * it pushes out. Returns undefined when the connection was refused, else a function to call once
 * the handshake is through (false: refused, no room among established connections).
 */
export function admitPeer(book: AdmissionBook, connection: PeerConnection, address: string, deadlineMs: number): (() => boolean) | undefined {
  const admitted = book.admit(address);
  if ("refused" in admitted) {
    connection.refuse(WIRE_ERROR.OVERLOADED, admitted.refused);
    return undefined;
  }
  const { ticket } = admitted;
  for (const old of admitted.evicted) waitingConnections.get(old)?.refuse(WIRE_ERROR.OVERLOADED, "too many connections waiting for a handshake");
  waitingConnections.set(ticket, connection);
  const deadline = setTimeout(() => connection.refuse(WIRE_ERROR.OVERLOADED, `the handshake did not complete in time (${deadlineMs} ms)`), deadlineMs);
  deadline.unref();
  connection.once("close", () => {
    clearTimeout(deadline);
    waitingConnections.delete(ticket);
    book.release(ticket);
  });
  return () => {
    clearTimeout(deadline);
    waitingConnections.delete(ticket);
    const refusal = book.establish(ticket);
    if (refusal) connection.refuse(WIRE_ERROR.OVERLOADED, refusal);
    return refusal === undefined;
  };
}

/** Waiting tickets' connections, so that a pushed-out ticket's connection can be refused. */
const waitingConnections = new WeakMap<Ticket, PeerConnection>();
