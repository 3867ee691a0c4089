/**
 * When the peers of one tracker object will announce next, counted by the second, so that each
 * answer can ask for the next announce in a second that is not full. Peers that arrive together
 * (a fleet starting at once) would otherwise come back together, interval after interval: booked
 * into the calendar they spread out to at most `perSecond` an object, once the first wave is in.
 * Booking costs the width of the window it may choose from (at most a few dozen seconds), never
 * the swarm size.
 */
export class AnnounceCalendar {
  /** Seconds ahead the calendar covers; later bookings are not counted. */
  static readonly SPAN_SECONDS = 512;
  private readonly counts = new Uint32Array(AnnounceCalendar.SPAN_SECONDS);
  /** Which absolute second each slot counts (slots are reused as time moves on). */
  private readonly seconds = new Float64Array(AnnounceCalendar.SPAN_SECONDS).fill(-1);

  constructor(private readonly perSecond: number) {}

  /** Counts an announce nobody booked (a newcomer, a completion) in the second it came. */
  arrived(now: number): void {
    this.add(Math.floor(now / 1000));
  }

  /**
   * Books an announce between `earliest` and `latest` whole seconds from `now` (ms), in the first
   * second with room, else the least full; returns its offset in seconds from now.
   */
  book(now: number, earliest: number, latest: number): number {
    const base = Math.floor(now / 1000);
    const from = Math.ceil(earliest);
    const last = Math.min(Math.max(from, Math.floor(latest)), AnnounceCalendar.SPAN_SECONDS - 1);
    let best = from;
    let bestCount = Number.POSITIVE_INFINITY;
    for (let offset = from; offset <= last; offset++) {
      const n = this.count(base + offset);
      if (n < this.perSecond) {
        best = offset;
        break;
      }
      if (n < bestCount) {
        best = offset;
        bestCount = n;
      }
    }
    this.add(base + best);
    return best === from ? earliest : best;
  }

  /** The absolute second an offset booked at `now` falls in (to tell a booked arrival from another). */
  static secondOf(now: number, offsetSeconds: number): number {
    return Math.floor(now / 1000 + offsetSeconds + 1e-9);
  }

  private count(second: number): number {
    const slot = second % AnnounceCalendar.SPAN_SECONDS;
    return this.seconds[slot] === second ? this.counts[slot]! : 0;
  }

  private add(second: number): void {
    const slot = second % AnnounceCalendar.SPAN_SECONDS;
    if (this.seconds[slot] !== second) {
      this.seconds[slot] = second;
      this.counts[slot] = 0;
    }
    this.counts[slot]!++;
  }
}
