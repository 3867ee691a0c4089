/**
 * The simulator's clock: a binary min-heap of callbacks by (time, insertion order), so events at
 * the same virtual time run in the order they were scheduled and a run is the same for a seed.
 */
export class EventQueue {
  private times: number[] = [];
  private seqs: number[] = [];
  private fns: (() => void)[] = [];
  private seq = 0;
  /** Events run so far. */
  processed = 0;
  now = 0;

  get size(): number {
    return this.fns.length;
  }

  /** Runs `fn` at absolute virtual time `at` (ms); never before now. */
  at(at: number, fn: () => void): void {
    this.push(Math.max(at, this.now), this.seq++, fn);
  }

  after(delayMs: number, fn: () => void): void {
    this.at(this.now + delayMs, fn);
  }

  peekTime(): number {
    return this.fns.length > 0 ? this.times[0]! : Number.POSITIVE_INFINITY;
  }

  /** Runs every event due at or before `until`, advancing the clock to each. */
  runUntil(until: number): void {
    while (this.fns.length > 0 && this.times[0]! <= until) {
      this.now = this.times[0]!;
      const fn = this.pop();
      this.processed++;
      fn();
    }
    if (until > this.now && Number.isFinite(until)) this.now = until;
  }

  private less(a: number, b: number): boolean {
    return this.times[a]! < this.times[b]! || (this.times[a] === this.times[b] && this.seqs[a]! < this.seqs[b]!);
  }

  private swap(a: number, b: number): void {
    [this.times[a], this.times[b]] = [this.times[b]!, this.times[a]!];
    [this.seqs[a], this.seqs[b]] = [this.seqs[b]!, this.seqs[a]!];
    [this.fns[a], this.fns[b]] = [this.fns[b]!, this.fns[a]!];
  }

  private push(time: number, seq: number, fn: () => void): void {
    this.times.push(time);
    this.seqs.push(seq);
    this.fns.push(fn);
    let i = this.fns.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  private pop(): () => void {
    const top = this.fns[0]!;
    const last = this.fns.length - 1;
    this.swap(0, last);
    this.times.pop();
    this.seqs.pop();
    this.fns.pop();
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < this.fns.length && this.less(l, m)) m = l;
      if (r < this.fns.length && this.less(r, m)) m = r;
      if (m === i) break;
      this.swap(i, m);
      i = m;
    }
    return top;
  }
}
