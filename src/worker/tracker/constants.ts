/** The interval (s) of a small swarm; a big one is asked for longer (see swarm.ts). */
export const ANNOUNCE_INTERVAL_SECONDS = 3;
/** Most peers in one handout. */
export const MAX_HANDOUT = 30;
