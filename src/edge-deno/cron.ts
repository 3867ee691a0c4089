/**
 * Cron Triggers on the self-hosted edge: the Worker's `[triggers] crons` (wrangler.toml), checked
 * once a minute in UTC, as Cloudflare runs them. The five standard fields, each `*`, a number, a
 * range `a-b`, a list `a,b` or a step `*\/n` / `a-b/n` (no names, no `L`/`W`/`#`).
 */
const FIELDS = [
  { min: 0, max: 59 }, // minute
  { min: 0, max: 23 }, // hour
  { min: 1, max: 31 }, // day of month
  { min: 1, max: 12 }, // month
  { min: 0, max: 6 }, // day of week, Sunday 0 (7 too)
] as const;

export type CronSchedule = Set<number>[];

export function parseCron(expression: string): CronSchedule {
  const parts = expression.trim().split(/\s+/);
  if (parts.length !== 5) throw new Error(`cron ${JSON.stringify(expression)}: five fields expected`);
  return parts.map((part, i) => {
    const { min, max } = FIELDS[i]!;
    const values = new Set<number>();
    for (const item of part.split(",")) {
      const match = /^(\*|(\d+)(?:-(\d+))?)(?:\/(\d+))?$/.exec(item);
      if (!match) throw new Error(`cron ${JSON.stringify(expression)}: cannot read ${JSON.stringify(item)}`);
      const from = match[1] === "*" ? min : Number(match[2]);
      const to = match[1] === "*" ? max : match[3] !== undefined ? Number(match[3]) : match[4] !== undefined ? max : from;
      const step = match[4] !== undefined ? Number(match[4]) : 1;
      if (from < min || to > (i === 4 ? 7 : max) || from > to || step < 1) throw new Error(`cron ${JSON.stringify(expression)}: ${item} is out of range`);
      for (let v = from; v <= to; v += step) values.add(i === 4 && v === 7 ? 0 : v);
    }
    return values;
  });
}

export function cronMatches(schedule: CronSchedule, at: Date): boolean {
  const [minute, hour, day, month, weekday] = schedule;
  return minute!.has(at.getUTCMinutes()) && hour!.has(at.getUTCHours()) && day!.has(at.getUTCDate()) && month!.has(at.getUTCMonth() + 1) && weekday!.has(at.getUTCDay());
}

/** The `crons = [...]` of wrangler.toml's `[triggers]`. */
export function cronsFromToml(toml: string): string[] {
  const triggers = /^\[triggers\][^[]*?^crons\s*=\s*\[([^\]]*)\]/ms.exec(toml);
  if (!triggers) return [];
  return [...triggers[1]!.matchAll(/"([^"]+)"/g)].map((m) => m[1]!);
}

/** Calls `run(cron)` for each schedule at the start of every minute it matches; stop() ends it. */
export function startCrons(crons: string[], run: (cron: string, at: Date) => void): { stop(): void } {
  const schedules = crons.map((cron) => ({ cron, schedule: parseCron(cron) }));
  let timer: ReturnType<typeof setTimeout> | undefined;
  const tick = () => {
    const now = new Date();
    for (const { cron, schedule } of schedules) if (cronMatches(schedule, now)) run(cron, now);
    timer = setTimeout(tick, 60_000 - (Date.now() % 60_000) + 5);
  };
  timer = setTimeout(tick, 60_000 - (Date.now() % 60_000) + 5);
  return { stop: () => clearTimeout(timer) };
}
