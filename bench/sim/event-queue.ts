/**
 * The simulator's clock: events by (time, insertion order), so events at the same virtual time run
 * in the order they were scheduled and a run is the same for a seed.
 *
 * Events for a later time wait in a binary min-heap (times and sequence numbers in typed arrays,
 * sifted by moving a hole rather than swapping). Events for the current time — most of them: every
 * scheduler poll is queued "now" — go to a FIFO instead: each was scheduled after every event of
 * the heap due now (those were all queued before the clock reached now), so the heap's events due
 * now run first, then the FIFO in order, which is exactly the (time, insertion order) order.
 */
export class EventQueue {
  private times = new Float64Array(1024);
  private seqs = new Float64Array(1024);
  private fns: (() => void)[] = [];
  private length = 0;
  private seq = 0;
  private nowFns: (() => void)[] = [];
  private nowHead = 0;
  /** Events run so far. */
  processed = 0;
  now = 0;

  get size(): number {
    return this.length + this.nowFns.length - this.nowHead;
  }

  /** Runs `fn` at absolute virtual time `at` (ms); never before now. */
  at(at: number, fn: () => void): void {
    if (at <= this.now) this.nowFns.push(fn);
    else this.push(at, this.seq++, fn);
  }

  after(delayMs: number, fn: () => void): void {
    this.at(this.now + delayMs, fn);
  }

  peekTime(): number {
    if (this.nowHead < this.nowFns.length) return this.now;
    return this.length > 0 ? this.times[0]! : Number.POSITIVE_INFINITY;
  }

  /** Runs every event due at or before `until`, advancing the clock to each. */
  runUntil(until: number): void {
    for (;;) {
      if (this.length > 0 && this.times[0]! <= this.now) {
        this.run(this.pop());
      } else if (this.nowHead < this.nowFns.length) {
        const fn = this.nowFns[this.nowHead]!;
        this.nowFns[this.nowHead++] = undefined as unknown as () => void;
        if (this.nowHead === this.nowFns.length) {
          this.nowFns.length = 0;
          this.nowHead = 0;
        }
        this.run(fn);
      } else if (this.length > 0 && this.times[0]! <= until) {
        this.now = this.times[0]!;
        this.run(this.pop());
      } else break;
    }
    if (until > this.now && Number.isFinite(until)) this.now = until;
  }

  private run(fn: () => void): void {
    this.processed++;
    fn();
  }

  private push(time: number, seq: number, fn: () => void): void {
    if (this.length === this.times.length) {
      const times = new Float64Array(this.length * 2);
      times.set(this.times);
      this.times = times;
      const seqs = new Float64Array(this.length * 2);
      seqs.set(this.seqs);
      this.seqs = seqs;
    }
    const { times, seqs, fns } = this;
    let i = this.length++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const pt = times[parent]!;
      if (pt < time || (pt === time && seqs[parent]! < seq)) break;
      times[i] = pt;
      seqs[i] = seqs[parent]!;
      fns[i] = fns[parent]!;
      i = parent;
    }
    times[i] = time;
    seqs[i] = seq;
    fns[i] = fn;
  }

  private pop(): () => void {
    const { times, seqs, fns } = this;
    const top = fns[0]!;
    const n = --this.length;
    const time = times[n]!;
    const seq = seqs[n]!;
    const fn = fns[n]!;
    fns[n] = undefined as unknown as () => void;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      let m = l;
      if (r < n && (times[r]! < times[l]! || (times[r] === times[l] && seqs[r]! < seqs[l]!))) m = r;
      if (times[m]! > time || (times[m] === time && seqs[m]! > seq)) break;
      times[i] = times[m]!;
      seqs[i] = seqs[m]!;
      fns[i] = fns[m]!;
      i = m;
    }
    if (n > 0) {
      times[i] = time;
      seqs[i] = seq;
      fns[i] = fn;
    }
    return top;
  }
}
