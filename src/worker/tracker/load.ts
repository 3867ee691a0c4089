import { intervalFor, minIntervalFor } from "./swarm.js";
import { ANNOUNCE_INTERVAL_SECONDS } from "./constants.js";

/**
 * What distributing one blob to a fleet costs the edge, in Worker requests, as a pure function of
 * the fleet and the tracker's interval policy (README, "The tracker at fleet scale"). Per host:
 * the metainfo read, the first announce, a quick second one (at minInterval), one per interval
 * while downloading, the announce of completion, and one per interval while the agent seeds the
 * blob (its seed window, 600 s by default, after the last use). Web-seed reads: about one copy of
 * the blob per cluster, a Range request per piece.
 */
export interface FleetLoad {
  hosts: number;
  /** Seconds a download takes. */
  downloadSeconds: number;
  /** Seconds a host keeps announcing the blob as seeded after completing it. */
  seedSeconds: number;
  pieces: number;
  clusters?: number;
  /** Tracker objects the swarm is spread over (1: one Durable Object per blob). */
  objects?: number;
}

export interface FleetLoadReport {
  intervalSeconds: number;
  minIntervalSeconds: number;
  announcesPerHost: number;
  workerRequests: number;
  /** Steady announces per second reaching one tracker object. */
  announcesPerSecondPerObject: number;
}

export function fleetLoad(load: FleetLoad, intervalOf: (peersPerObject: number) => number = (n) => intervalFor(n, { baseIntervalSeconds: ANNOUNCE_INTERVAL_SECONDS })): FleetLoadReport {
  const objects = load.objects ?? 1;
  const perObject = Math.ceil(load.hosts / objects);
  const interval = intervalOf(perObject);
  const minInterval = Math.min(interval, minIntervalFor(perObject, { baseIntervalSeconds: ANNOUNCE_INTERVAL_SECONDS }));
  const announcesPerHost = 1 + (load.downloadSeconds > minInterval ? 1 : 0) + Math.floor(load.downloadSeconds / interval) + 1 + Math.floor(load.seedSeconds / interval);
  const workerRequests = load.hosts * (1 + announcesPerHost) + load.pieces * (load.clusters ?? 1);
  return { intervalSeconds: interval, minIntervalSeconds: minInterval, announcesPerHost, workerRequests, announcesPerSecondPerObject: perObject / interval };
}
