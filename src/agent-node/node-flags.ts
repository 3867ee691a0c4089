/**
 * The V8 flags every agent process runs with: the bundle's `#!` line, the Dockerfile's ENTRYPOINT,
 * the systemd unit's ExecStart, the devcluster and the benchmarks all pass these (their tests check).
 *
 * `--max-semi-space-size=4`: a 4 MiB young-generation semi-space instead of V8's 16 MiB on 64-bit.
 * An agent moving pieces at full speed allocates short-lived objects (frames, promises, socket
 * chunks' wrappers) fast; with the smaller nursery they die in smaller, cheaper scavenges, and the
 * process holds less. `npm run bench -- agent` (one agent pulling 1 GiB from 3 seeders, median of
 * 3 rounds), three paired runs in one session: peak RSS 119-120 MiB against 133-141 MiB, CPU
 * 2.75-2.94 s/GiB received against 3.09-3.44, 422-448 MB/s against 382-408. (1 MiB: RSS 115 MiB
 * but CPU 3.20 s/GiB.)
 */
export const AGENT_NODE_FLAGS: readonly string[] = ["--max-semi-space-size=4"];

/**
 * The environment every agent process starts with; the same places set it (the `#!` line through
 * `env -S`, the Dockerfile's ENV, the systemd unit's Environment=, the devcluster, the benchmarks).
 *
 * `MALLOC_ARENA_MAX=1`: one glibc malloc arena instead of one per thread. V8's compiler threads
 * allocate their zones with malloc; with an arena of their own each, what they freed stayed with
 * that arena, out of the main thread's reach. Full-scale runs (16 agents pulling 256 MiB,
 * alternated, 2026-12-03): peak RSS 132 / 133 MiB against 147 / 148 MiB (2 arenas: 143 MiB), agent
 * CPU 40.6 / 37.9 s against 36.8 / 39.7 s, within the runs' spread. musl ignores it.
 */
export const AGENT_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: "1" };

/** AGENT_ENV as NAME=VALUE words (for `env -S`, systemd's Environment=). */
export const AGENT_ENV_ASSIGNMENTS: readonly string[] = Object.entries(AGENT_ENV).map(([name, value]) => `${name}=${value}`);
