import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestEdge, type TestEdge } from "../helpers/edge.js";
import { AnnounceResponseSchema } from "../../src/shared/api/announce.js";

let edge: TestEdge;
beforeAll(async () => {
  edge = await startTestEdge();
});
afterAll(async () => edge?.destroy());

const announce = (body: unknown) =>
  fetch(`${edge.url}/shoal/v1/announce`, { method: "POST", body: typeof body === "string" ? body : JSON.stringify(body), headers: { "Content-Type": "application/json" } });
const base = {
  digest: "sha256:" + "b".repeat(64),
  ip: "127.0.0.1",
  port: 16001,
  zone: "local",
  cluster: "dev",
  complete: false,
  have: 0,
  pieceCount: 10,
};

describe("tracker (Durable Object per swarm)", () => {
  it("introduces peers of one swarm to each other, not to other swarms", async () => {
    await announce({ ...base, peerId: "1".repeat(40), complete: true, have: 10 });
    const res = await announce({ ...base, peerId: "2".repeat(40), port: 17001 });
    expect(res.status).toBe(200);
    const body = AnnounceResponseSchema.parse(await res.json());
    expect(body.peers.map((p) => p.peerId)).toEqual(["1".repeat(40)]);
    expect(body.peers[0]).toMatchObject({ ip: "127.0.0.1", port: 16001, complete: true });
    const other = AnnounceResponseSchema.parse(await (await announce({ ...base, digest: "sha256:" + "c".repeat(64), peerId: "3".repeat(40) })).json());
    expect(other.peers).toEqual([]);
  });

  it.each([
    ["not JSON", "{"],
    ["a bad peer id", { ...base, peerId: "xyz" }],
    ["a bad address", { ...base, peerId: "4".repeat(40), ip: "999.1.1.1" }],
    ["unknown fields", { ...base, peerId: "4".repeat(40), extra: 1 }],
    ["have > pieceCount", { ...base, peerId: "4".repeat(40), have: 11 }],
  ])("refuses %s with a reason", async (_label, body) => {
    const res = await announce(body);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { errors: { message: string }[] }).errors[0]!.message).toMatch(/announce/);
  });

  it("refuses an oversized announce", async () => {
    const res = await announce({ ...base, peerId: "5".repeat(40), zone: "x".repeat(5000) });
    expect(res.status).toBe(413);
  });
});
