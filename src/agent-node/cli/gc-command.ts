import { Command } from "commander";
import { authorizationHeader } from "../../shared/auth/credentials.js";
import { CliError, responseError } from "./cli-error.js";
import { formatBytes } from "./progress.js";

interface GcFlags {
  edge: string;
  dryRun?: boolean;
  token?: string;
  timeout: string;
  json?: boolean;
}

/** A run as the edge reports it (`GET /shoal/v1/gc/runs/<id>`, src/worker/gc/run.ts). */
interface GcRunReport {
  id: number;
  dryRun: boolean;
  phase: string;
  startedAt: number;
  finishedAt?: number;
  batches: number;
  counters: {
    repositories: number;
    manifests: number;
    liveManifests: number;
    tagsDropped: number;
    manifestsDropped: number;
    linksDropped: number;
    objects: number;
    bytes: number;
    garbageObjects: number;
    garbageBytes: number;
    freedObjects: number;
    freedBytes: number;
    savedByInterlock: number;
    storageLists?: number;
    storageDeletes?: number;
    storageReads?: number;
  };
}

/** `shoal gc --edge URL [--dry-run]`: one garbage collection on the edge, waited for, with its report. */
export function gcCommand(): Command {
  return new Command("gc")
    .description("run a garbage collection on the edge (or join the one running) and report what it found and freed")
    .requiredOption("--edge <url>", "the edge, e.g. http://localhost:15000")
    .option("--dry-run", "find what a collection would free, delete nothing")
    .option("--token <user:token>", "credentials with the gc right (default: $SHOAL_TOKEN)")
    .option("--timeout <seconds>", "give up waiting after this long", "3600")
    .option("--json", "print the report as JSON")
    .action(async (flags: GcFlags) => {
      await collect(flags);
    });
}

async function collect(flags: GcFlags): Promise<void> {
  let edge: URL;
  try {
    edge = new URL(flags.edge);
    if (edge.protocol !== "http:" && edge.protocol !== "https:") throw new Error("not http");
  } catch {
    throw new CliError(`--edge must be an http(s) URL, not ${JSON.stringify(flags.edge)}`, 2);
  }
  const timeout = Number(flags.timeout);
  if (!Number.isFinite(timeout) || timeout <= 0) throw new CliError(`--timeout must be a number of seconds, not ${JSON.stringify(flags.timeout)}`, 2);
  const token = flags.token ?? process.env.SHOAL_TOKEN;
  const headers: Record<string, string> = { "Content-Type": "application/json" };
  if (token) {
    try {
      headers.Authorization = authorizationHeader(token);
    } catch (error) {
      throw new CliError(`--token: ${(error as Error).message}`, 2);
    }
  }
  const base = edge.toString().replace(/\/+$/, "");
  const request = async (path: string, init: RequestInit = {}) => {
    try {
      return await fetch(`${base}${path}`, { ...init, headers: { ...headers, ...(init.headers as Record<string, string>) } });
    } catch (error) {
      throw new CliError(`cannot reach the edge at ${base}: ${(error as Error).cause ?? (error as Error).message}`);
    }
  };
  const start = await request("/shoal/v1/gc", { method: "POST", body: JSON.stringify({ dryRun: flags.dryRun === true }) });
  if (start.status !== 200 && start.status !== 202) throw await responseError(start, "starting a garbage collection", start.status === 401 || start.status === 403 ? " (pass --token with the gc right)" : "");
  const { run: started, joined } = (await start.json()) as { run: GcRunReport; joined: boolean };
  if (joined) process.stderr.write(`shoal: a collection was already running (run ${started.id}${started.dryRun ? ", dry" : ""}): waiting for it\n`);
  const deadline = Date.now() + timeout * 1000;
  let run = started;
  let shown = "";
  while (run.phase !== "done") {
    if (Date.now() > deadline) throw new CliError(`garbage collection run ${run.id} did not finish in ${flags.timeout} s (it goes on at the edge)`);
    await new Promise((r) => setTimeout(r, 500));
    const res = await request(`/shoal/v1/gc/runs/${run.id}`);
    if (!res.ok) throw await responseError(res, `reading garbage collection run ${run.id}`);
    run = (await res.json()) as GcRunReport;
    const line = `run ${run.id}: ${run.phase}, ${run.batches} batches`;
    if (process.stderr.isTTY && line !== shown) process.stderr.write(`\r${line}\x1b[K`);
    shown = line;
  }
  if (process.stderr.isTTY && shown) process.stderr.write("\n");
  process.stdout.write(flags.json ? `${JSON.stringify(run, null, 2)}\n` : formatReport(run));
}

export function formatReport(run: GcRunReport): string {
  const c = run.counters;
  const seconds = ((run.finishedAt ?? Date.now()) - run.startedAt) / 1000;
  const verb = run.dryRun ? "would free" : "freed";
  return [
    `garbage collection run ${run.id}${run.dryRun ? " (dry run: nothing deleted)" : ""}, ${seconds.toFixed(1)} s in ${run.batches} batches`,
    `  repositories   ${c.repositories}`,
    `  manifests      ${c.manifests} (${c.liveManifests} live; ${c.manifestsDropped} ${run.dryRun ? "unreachable" : "deleted"}, ${c.tagsDropped} tags dropped by retention)`,
    `  storage        ${c.objects} objects, ${formatBytes(c.bytes)}`,
    `  unreachable    ${c.garbageObjects} objects, ${formatBytes(c.garbageBytes)}`,
    `  ${verb.padEnd(14)} ${run.dryRun ? c.garbageObjects : c.freedObjects} objects, ${formatBytes(run.dryRun ? c.garbageBytes : c.freedBytes)}`,
    `  storage calls  ${c.storageLists ?? 0} lists, ${c.storageDeletes ?? 0} deletes, ${c.storageReads ?? 0} manifest reads`,
    ...(c.savedByInterlock > 0 ? [`  kept           ${c.savedByInterlock} blobs linked again by pushes during the run`] : []),
    "",
  ].join("\n");
}
