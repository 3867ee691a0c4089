import type { EventQueue } from "./event-queue.js";

/** The edge (web seed) as a transfer's source. */
export const EDGE = -1;

export interface Transfer {
  src: number;
  dst: number;
  bytes: number;
  remaining: number;
  /** Clusters whose WAN uplink the bytes cross (the receiver's for the edge; both for a cross-cluster peer). */
  wanA: number;
  wanB: number;
  done: (at: number) => void;
  /** Taken out (cancelled, or a side died): the next step drops it. */
  stopped: boolean;
  rate: number;
  extra: number;
}

const FILL_ROUNDS = Number(process.env.FILL_ROUNDS ?? 2);

export interface NetworkShape {
  up: Float64Array;
  down: Float64Array;
  cluster: Int32Array;
  /** Bytes/s of each cluster's uplink to the edge. */
  wan: number[];
  /** Bytes/s the edge serves in all (Infinity: the edge is not the bottleneck). */
  edge: number;
  /**
   * Seconds of its rate a link may pass at once after it was idle, as a token bucket lets it: the
   * real benchmark's links are token buckets with half a second of credit (at least 1 MiB on an
   * agent's link: token-bucket.ts bucketFor, bench/lib/link.ts). 0 (the default): a pure rate.
   */
  burstSeconds?: number;
}

/** The least credit an agent's link has (token-bucket.ts bucketFor: at least one 1 MiB block). */
const MIN_HOST_BURST_BYTES = 1024 * 1024;

/** A link's credit (bytes it may pass above its rate), spent and refilled step by step. */
class Credit {
  readonly left: Float64Array;
  readonly moved: Float64Array;
  readonly capacity: Float64Array;
  constructor(
    private readonly rates: ArrayLike<number>,
    private readonly burst: Float64Array,
  ) {
    this.left = Float64Array.from(burst);
    this.moved = new Float64Array(rates.length);
    this.capacity = Float64Array.from(rates);
  }

  /** This step's capacity of each link: its rate, plus all of its credit spread over the step. */
  open(dt: number): void {
    for (let i = 0; i < this.rates.length; i++) this.capacity[i] = this.rates[i]! + this.left[i]! / dt;
  }

  /** What the step moved is paid for: credit is what the rate would have moved, less what was moved, up to the burst. */
  close(dt: number): void {
    for (let i = 0; i < this.rates.length; i++) {
      this.left[i] = Math.min(this.burst[i]!, Math.max(0, this.left[i]! + this.rates[i]! * dt - this.moved[i]!));
      this.moved[i] = 0;
    }
  }
}

/**
 * A fluid network advanced in fixed steps: during a step every active transfer moves at
 * min(sender's uplink / its active uploads, receiver's downlink / its active downloads, the WAN
 * uplink / transfers crossing it, the edge / its transfers), then topped up with what links left
 * unused, so no host, uplink or edge ever carries more than its capacity. Stepping costs O(active transfers) per step instead of
 * rescheduling every transfer that shares a link whenever one starts or ends (20,000 web-seed
 * reads share one WAN at the start of a fleet run). A transfer that finishes inside a step is
 * finished at the exact time its rate gives; one started inside a step moves from the next step.
 */
export class FluidNetwork {
  private active: Transfer[] = [];
  private readonly nUp: Int32Array;
  private readonly nDown: Int32Array;
  private readonly nWan: Int32Array;
  readonly bytesUp: Float64Array;
  readonly bytesDown: Float64Array;
  readonly wanBytes: Float64Array;
  edgeBytes = 0;
  peerBytes = 0;
  /** Highest load seen on any host link or uplink, as a fraction of its capacity (must stay ≤ 1). */
  peakLoad = 0;
  private readonly usedUp: Float64Array;
  private readonly usedDown: Float64Array;
  private readonly loadUp: Float64Array;
  private readonly loadDown: Float64Array;
  /** With burstSeconds: the links' credit; each step's capacities come from it. */
  private readonly credit: { up: Credit; down: Credit; wan: Credit } | undefined;
  /** Each link's capacity in the current step (the shape's rates, or with credit). */
  private up: ArrayLike<number>;
  private down: ArrayLike<number>;
  private wan: ArrayLike<number>;

  constructor(
    private readonly shape: NetworkShape,
    private readonly queue: EventQueue,
    readonly stepMs: number,
    /** Check the load of every link each step (the CI test's invariant; costs a pass). */
    private readonly checkLoad = false,
  ) {
    const n = shape.up.length;
    this.nUp = new Int32Array(n);
    this.nDown = new Int32Array(n);
    this.nWan = new Int32Array(shape.wan.length);
    this.bytesUp = new Float64Array(n);
    this.bytesDown = new Float64Array(n);
    this.wanBytes = new Float64Array(shape.wan.length);
    this.usedUp = new Float64Array(n);
    this.usedDown = new Float64Array(n);
    this.loadUp = new Float64Array(checkLoad ? n : 0);
    this.loadDown = new Float64Array(checkLoad ? n : 0);
    const burst = shape.burstSeconds ?? 0;
    const hostBurst = (rates: Float64Array) => rates.map((r) => Math.max(r * burst, MIN_HOST_BURST_BYTES));
    this.credit =
      burst > 0
        ? { up: new Credit(shape.up, hostBurst(shape.up)), down: new Credit(shape.down, hostBurst(shape.down)), wan: new Credit(shape.wan, Float64Array.from(shape.wan, (r) => r * burst)) }
        : undefined;
    this.up = shape.up;
    this.down = shape.down;
    this.wan = shape.wan;
  }

  get busy(): boolean {
    return this.active.length > 0;
  }

  start(src: number, dst: number, bytes: number, done: (at: number) => void): Transfer {
    const cs = src === EDGE ? -1 : this.shape.cluster[src]!;
    const cd = this.shape.cluster[dst]!;
    const t: Transfer = { src, dst, bytes, remaining: bytes, wanA: cs === cd ? -1 : cd, wanB: cs === cd || cs < 0 ? -1 : cs, done, stopped: false, rate: 0, extra: 0 };
    this.active.push(t);
    return t;
  }

  stop(t: Transfer): void {
    t.stopped = true;
  }

  /** Moves every transfer over [t0, t0 + stepMs) and schedules the completions inside it. */
  step(t0: number): void {
    const dt = this.stepMs / 1000;
    const credit = this.credit;
    if (credit) {
      for (const c of [credit.up, credit.down, credit.wan]) c.open(dt);
      this.up = credit.up.capacity;
      this.down = credit.down.capacity;
      this.wan = credit.wan.capacity;
    }
    const { up, down, wan } = this;
    const { edge } = this.shape;
    let live = 0;
    let edgeN = 0;
    for (const t of this.active) {
      if (t.stopped) continue;
      this.active[live++] = t;
      if (t.src !== EDGE) this.nUp[t.src]!++;
      else edgeN++;
      this.nDown[t.dst]!++;
      if (t.wanA >= 0) this.nWan[t.wanA]!++;
      if (t.wanB >= 0) this.nWan[t.wanB]!++;
    }
    this.active.length = live;
    for (const t of this.active) {
      let rate = down[t.dst]! / this.nDown[t.dst]!;
      if (t.src !== EDGE) rate = Math.min(rate, up[t.src]! / this.nUp[t.src]!);
      else rate = Math.min(rate, edge / edgeN);
      if (t.wanA >= 0) rate = Math.min(rate, wan[t.wanA]! / this.nWan[t.wanA]!);
      if (t.wanB >= 0) rate = Math.min(rate, wan[t.wanB]! / this.nWan[t.wanB]!);
      t.rate = rate;
    }
    // An equal split wastes what a transfer held back elsewhere cannot use (TCP would take it):
    // twice, hand each link's unused capacity out equally among its transfers (each still
    // within every link it crosses), which comes close to max-min fairness.
    for (let round = 0; round < FILL_ROUNDS; round++) this.fill(edgeN);
    const still: Transfer[] = [];
    for (const t of this.active) {
      const rate = t.rate;
      const moved = Math.min(t.remaining, rate * dt);
      t.remaining -= moved;
      this.bytesDown[t.dst]! += moved;
      if (t.src !== EDGE) {
        this.bytesUp[t.src]! += moved;
        if (t.wanA < 0) this.peerBytes += moved;
      } else this.edgeBytes += moved;
      if (t.wanA >= 0) this.wanBytes[t.wanA]! += moved;
      if (t.wanB >= 0) this.wanBytes[t.wanB]! += moved;
      if (credit) {
        credit.down.moved[t.dst]! += moved;
        if (t.src !== EDGE) credit.up.moved[t.src]! += moved;
        if (t.wanA >= 0) credit.wan.moved[t.wanA]! += moved;
        if (t.wanB >= 0) credit.wan.moved[t.wanB]! += moved;
      }
      if (this.checkLoad) {
        this.loadDown[t.dst]! += rate / down[t.dst]!;
        if (t.src !== EDGE) this.loadUp[t.src]! += rate / up[t.src]!;
      }
      if (t.remaining <= 1e-6) {
        const at = t0 + (moved / rate) * 1000;
        const done = t.done;
        this.queue.at(at, () => done(at));
      } else still.push(t);
    }
    if (this.checkLoad) this.recordLoad(edgeN);
    for (const t of this.active) {
      if (t.src !== EDGE) this.nUp[t.src] = 0;
      this.nDown[t.dst] = 0;
    }
    this.nWan.fill(0);
    this.active = still;
    if (credit) for (const c of [credit.up, credit.down, credit.wan]) c.close(dt);
  }

  /** One round of handing out unused capacity (see step). */
  private fill(edgeN: number): void {
    const { up, down, wan } = this;
    const { edge } = this.shape;
    const usedUp = this.usedUp;
    const usedDown = this.usedDown;
    const usedWan = new Float64Array(wan.length);
    let usedEdge = 0;
    for (const t of this.active) {
      if (t.src !== EDGE) usedUp[t.src]! += t.rate;
      else usedEdge += t.rate;
      usedDown[t.dst]! += t.rate;
      if (t.wanA >= 0) usedWan[t.wanA]! += t.rate;
      if (t.wanB >= 0) usedWan[t.wanB]! += t.rate;
    }
    for (const t of this.active) {
      let extra = (down[t.dst]! - usedDown[t.dst]!) / this.nDown[t.dst]!;
      if (t.src !== EDGE) extra = Math.min(extra, (up[t.src]! - usedUp[t.src]!) / this.nUp[t.src]!);
      else if (Number.isFinite(edge)) extra = Math.min(extra, (edge - usedEdge) / edgeN);
      if (t.wanA >= 0) extra = Math.min(extra, (wan[t.wanA]! - usedWan[t.wanA]!) / this.nWan[t.wanA]!);
      if (t.wanB >= 0) extra = Math.min(extra, (wan[t.wanB]! - usedWan[t.wanB]!) / this.nWan[t.wanB]!);
      t.extra = extra > 0 ? extra : 0;
    }
    for (const t of this.active) {
      t.rate += t.extra;
      if (t.src !== EDGE) usedUp[t.src] = 0;
      usedDown[t.dst] = 0;
    }
  }

  private recordLoad(edgeN: number): void {
    const wanRate = new Float64Array(this.shape.wan.length);
    let edgeRate = 0;
    for (const t of this.active) {
      if (t.src !== EDGE) this.peakLoad = Math.max(this.peakLoad, this.loadUp[t.src]!);
      else edgeRate += t.rate;
      this.peakLoad = Math.max(this.peakLoad, this.loadDown[t.dst]!);
      if (t.wanA >= 0) wanRate[t.wanA]! += t.rate;
      if (t.wanB >= 0) wanRate[t.wanB]! += t.rate;
    }
    for (let c = 0; c < wanRate.length; c++) this.peakLoad = Math.max(this.peakLoad, wanRate[c]! / this.wan[c]!);
    if (edgeN > 0 && Number.isFinite(this.shape.edge)) this.peakLoad = Math.max(this.peakLoad, edgeRate / this.shape.edge);
    for (const t of this.active) {
      if (t.src !== EDGE) this.loadUp[t.src] = 0;
      this.loadDown[t.dst] = 0;
    }
  }
}
