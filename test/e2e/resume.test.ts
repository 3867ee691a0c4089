import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtemp, open, readFile, readdir, rm } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import os from "node:os";
import path from "node:path";
import { startAgentProcess, startEdgeProcess, type AgentHandle } from "../helpers/processes.js";
import { pushBlob, sha256 } from "../helpers/registry-client.js";
import { pieceLengthFor } from "../../src/shared/p2p/metainfo.js";

/**
 * An agent killed in the middle of a swarm download resumes from the pieces it had verified, after
 * checking each of them again: a piece damaged on disk while it was down is fetched again, never
 * served.
 */
const PIECE = pieceLengthFor(6 * 1024 * 1024); // six pieces of 1 MiB
let home: string;
let edge: Awaited<ReturnType<typeof startEdgeProcess>>;
let blob: Buffer;
let digest: string;
const agents: AgentHandle[] = [];

beforeAll(async () => {
  home = await mkdtemp(path.join(os.tmpdir(), "shoal-resume-"));
  edge = await startEdgeProcess(home);
  blob = randomBytes(6 * PIECE);
  digest = await pushBlob(edge.url, "resume/blob", blob);
});
afterAll(async () => {
  await Promise.all(agents.map((a) => a.proc.stop("SIGKILL")));
  await edge?.proc.stop();
  await rm(home, { recursive: true, force: true });
});

async function recordedPieces(storeDir: string): Promise<{ log: string; data: string; pieces: number[] }> {
  const names = await readdir(path.join(storeDir, "partial"));
  const log = names.find((n) => n.endsWith(".pieces"));
  const data = names.find((n) => n.endsWith(".resume"));
  if (!log || !data) return { log: "", data: "", pieces: [] };
  const bytes = await readFile(path.join(storeDir, "partial", log));
  const pieces: number[] = [];
  for (let at = 0; at + 4 <= bytes.length; at += 4) pieces.push(bytes.readUInt32BE(at));
  return { log: path.join(storeDir, "partial", log), data: path.join(storeDir, "partial", data), pieces };
}

describe("an agent killed mid-download", () => {
  it("resumes from its verified pieces on restart and refetches a damaged one", async () => {
    const storeDir = await mkdtemp(path.join(home, "store-"));
    // Slow enough (a piece a second from the web seed) to be killed part way.
    const first = await startAgentProcess(edge.url, { storeDir, extra: ["--ingress-rate=1MiB"] });
    agents.push(first);
    const pulling = fetch(`${first.registry}/v2/resume/blob/blobs/${digest}`).then((r) => r.arrayBuffer()).catch(() => undefined);
    const deadline = Date.now() + 30_000;
    while ((await recordedPieces(storeDir)).pieces.length < 3) {
      if (Date.now() > deadline) throw new Error("the download never recorded 3 pieces");
      await new Promise((r) => setTimeout(r, 100));
    }
    await first.proc.stop("SIGKILL");
    await pulling;
    const { data, pieces } = await recordedPieces(storeDir);
    expect(pieces.length).toBeGreaterThanOrEqual(3);
    expect(pieces.length).toBeLessThan(6);
    // Damage one verified piece on disk while the agent is down.
    const damaged = pieces[0]!;
    const file = await open(data, "r+");
    await file.write(randomBytes(100), 0, 100, damaged * PIECE + 1000);
    await file.close();

    const second = await startAgentProcess(edge.url, { storeDir });
    agents.push(second);
    const res = await fetch(`${second.registry}/v2/resume/blob/blobs/${digest}`);
    expect(res.status).toBe(200);
    expect(sha256(Buffer.from(await res.arrayBuffer()))).toBe(digest);
    // It fetched exactly the pieces it did not have verified: the missing ones and the damaged one.
    const kept = new Set(pieces.filter((p) => p !== damaged));
    expect(await second.metric("shoal_agent_bytes_downloaded_total", '{source="origin"}')).toBe((6 - kept.size) * PIECE);
    expect(second.proc.output).toMatch(/resumed an interrupted download/);
    expect(await readdir(path.join(storeDir, "partial"))).toEqual([]);
  });
});
