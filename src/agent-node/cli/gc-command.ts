import { Command } from "commander";
import { z } from "zod";
import { authorizationHeader } from "../../shared/auth/credentials.js";
import { CliError, responseError } from "./cli-error.js";
import { formatBytes } from "./progress.js";
import { GcRunReportSchema, type GcRunReport } from "../../shared/api/gc.js";

interface GcFlags {
  edge: string;
  dryRun?: boolean;
  token?: string;
  timeout: string;
  json?: boolean;
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
  const { run: started, joined } = parseAnswer(StartAnswerSchema, await start.json(), "the edge's answer to a garbage collection start");
  if (joined) process.stderr.write(`shoal: a collection was already running (run ${started.id}${started.dryRun ? ", dry" : ""}): waiting for it\n`);
  const deadline = Date.now() + timeout * 1000;
  let run = started;
  let shown = "";
  while (run.phase !== "done") {
    if (Date.now() > deadline) throw new CliError(`garbage collection run ${run.id} did not finish in ${flags.timeout} s (it goes on at the edge)`);
    await new Promise((r) => setTimeout(r, 500));
    const res = await request(`/shoal/v1/gc/runs/${run.id}`);
    if (!res.ok) throw await responseError(res, `reading garbage collection run ${run.id}`);
    run = parseAnswer(GcRunReportSchema, await res.json(), `the edge's report of run ${run.id}`);
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

const StartAnswerSchema = z.object({ run: GcRunReportSchema, joined: z.boolean() });

/** An edge's JSON as the schema says, or one line saying what was wrong with it. */
function parseAnswer<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new CliError(`${what} is not what this CLI expects (${parsed.error.issues[0]?.path.join(".") || "body"}: ${parsed.error.issues[0]?.message}): is the edge a different version?`);
  return parsed.data;
}
