import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { startDenoEdge } from "../helpers/deno-edge.js";
import { pushImage } from "../helpers/registry-client.js";

/**
 * The Deno edge keeps each Durable Object in a SQLite file. Anonymous reads of repositories that
 * do not exist must not create files (each read of a new name made one: storage filled by anyone);
 * a write still lands on disk and survives a restart. A real Deno edge process.
 */
let home: string;
let edge: Awaited<ReturnType<typeof startDenoEdge>>;

async function sqliteFiles(): Promise<string[]> {
  const root = path.join(home, "edge-deno", "objects");
  const out: string[] = [];
  for (const cls of await readdir(root).catch(() => [] as string[])) {
    for (const name of await readdir(path.join(root, cls)).catch(() => [] as string[])) if (name.endsWith(".sqlite")) out.push(`${cls}/${name}`);
  }
  return out;
}

beforeAll(async () => {
  home = await mkdtemp(path.join(os.tmpdir(), "shoal-deno-objects-"));
  edge = await startDenoEdge(home);
});
afterAll(async () => {
  await edge?.service.stop();
  await rm(home, { recursive: true, force: true });
});

describe("the Deno edge's Durable Object files", () => {
  it("reads of 50 repositories that do not exist leave no file", async () => {
    const before = await sqliteFiles();
    for (let i = 0; i < 50; i++) {
      const res = await fetch(`${edge.url}/v2/rnd${i}-${Date.now()}/tags/list`);
      expect(res.status).toBe(404);
      await res.arrayBuffer();
    }
    expect(await sqliteFiles()).toEqual(before);
  });

  it("a push still lands in a file, and its tag is read back after a restart", async () => {
    await pushImage(edge.url, "kept/app", "v1").catch((error: Error) => {
      throw new Error(`${error.message}\n${edge.service.output.slice(-3000)}`);
    });
    expect((await sqliteFiles()).length).toBeGreaterThan(0);
    await edge.service.stop();
    edge = await startDenoEdge(home, {}, edge.port);
    const res = await fetch(`${edge.url}/v2/kept/app/tags/list`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { tags: string[] }).tags).toEqual(["v1"]);
  });
});
