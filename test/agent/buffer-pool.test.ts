import { describe, expect, it } from "vitest";
import { BufferPool } from "../../src/agent-node/p2p/buffer-pool.js";

describe("BufferPool", () => {
  it("hands a given-back buffer out again, by length, and keeps at most its idle bytes", () => {
    const pool = new BufferPool(2048);
    const a = pool.take(1024);
    const b = pool.take(1024);
    const c = pool.take(1024);
    expect(new Set([a, b, c]).size).toBe(3);
    pool.give(a);
    pool.give(b);
    pool.give(c); // past 2048 idle bytes: dropped
    expect(pool.bytes).toBe(2048);
    expect([pool.take(1024), pool.take(1024)].sort()).toEqual([a, b].sort());
    expect(pool.bytes).toBe(0);
    const other = pool.take(512);
    expect(other.length).toBe(512);
  });

  it("keeps one reference to a buffer given back twice", () => {
    const pool = new BufferPool(1 << 20);
    const a = pool.take(100);
    pool.give(a);
    pool.give(a);
    expect(pool.bytes).toBe(100);
    expect(pool.take(100)).toBe(a);
    expect(pool.take(100)).not.toBe(a);
  });
});
