/**
 * The swarm scheduler: the P2P policy of one blob as a pure state machine (events in, actions
 * out, clock and randomness injected). The agent drives it with sockets
 * (src/agent-node/p2p/swarm-session.ts); the fleet simulator drives thousands of copies with a
 * model of the network.
 */
export { SwarmScheduler, type SchedulerConfig } from "./scheduler.js";
export { WEB_SEED, type PeerKey, type PieceSource, type SchedulerAction, type SchedulerEvent } from "./events.js";
export { rarestFirst, sequential, type PieceSelectionPolicy, type SelectionView } from "./piece-selection.js";
export { P2P_DEFAULTS, SCHEDULER_TUNING, type SchedulerTuning } from "./config.js";
export { seededRandom, shuffled, type Random } from "./random.js";
