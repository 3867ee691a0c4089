/**
 * Bytes per second over the last few minutes, for the dashboards' throughput plots: a ring of
 * one-second buckets per series, kept in memory (the agent's process, the edge's catalog object).
 * Pure and Web-standard: the caller passes the time; nothing is stored anywhere.
 */
export interface RateSamples {
  /** The first sample's second (Unix time, s); samples follow one per second up to the last full one. */
  startSecond: number;
  /** Bytes in each second, oldest first, one array per series (same length). */
  series: Record<string, number[]>;
}

export class RateHistory {
  private readonly seconds: Int32Array;
  private readonly buckets: Map<string, Float64Array>;

  constructor(
    private readonly length: number,
    names: readonly string[],
  ) {
    this.seconds = new Int32Array(length).fill(-1);
    this.buckets = new Map(names.map((n) => [n, new Float64Array(length)]));
  }

  /** Adds `bytes` to series `name` in the second of `nowMs`. */
  add(name: string, bytes: number, nowMs: number): void {
    const bucket = this.buckets.get(name);
    if (!bucket || !(bytes > 0)) return;
    const i = this.slot(Math.floor(nowMs / 1000));
    bucket[i] = bucket[i]! + bytes;
  }

  /** The last `length` full seconds before `nowMs` (the current second is still filling), zeros where nothing was added. */
  samples(nowMs: number): RateSamples {
    const last = Math.floor(nowMs / 1000) - 1;
    const startSecond = last - this.length + 1;
    const series: Record<string, number[]> = {};
    for (const [name, bucket] of this.buckets) {
      const values: number[] = [];
      for (let s = startSecond; s <= last; s++) {
        const i = mod(s, this.length);
        values.push(this.seconds[i] === s ? bucket[i]! : 0);
      }
      series[name] = values;
    }
    return { startSecond, series };
  }

  /** The bucket of second `s`, emptied first when it last held an older second. */
  private slot(s: number): number {
    const i = mod(s, this.length);
    if (this.seconds[i] !== s) {
      this.seconds[i] = s;
      for (const bucket of this.buckets.values()) bucket[i] = 0;
    }
    return i;
  }
}

const mod = (a: number, n: number) => ((a % n) + n) % n;
