import { describe, expect, it } from "vitest";
import { ConnectionBudget } from "../../src/agent-node/p2p/connection-budget.js";

describe("ConnectionBudget", () => {
  it("hands out at most max slots and takes them back", () => {
    const budget = new ConnectionBudget(2);
    expect(budget.tryAcquire()).toBe(true);
    expect(budget.tryAcquire()).toBe(true);
    expect(budget.tryAcquire()).toBe(false);
    budget.release();
    expect(budget.inUse).toBe(1);
    expect(budget.tryAcquire()).toBe(true);
  });

  it("never goes below zero on extra releases", () => {
    const budget = new ConnectionBudget(1);
    budget.release();
    expect(budget.inUse).toBe(0);
    expect(budget.tryAcquire()).toBe(true);
    expect(budget.tryAcquire()).toBe(false);
  });
});
