import { describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { startWatchdog } from "../../src/devcluster/watchdog.js";
import { killProcessTree } from "../../src/devcluster/process-tree.js";

/** The devcluster's watchdog against a real HTTP server that stops answering while it stays up. */
describe("the devcluster's edge watchdog", () => {
  it("reports a server that keeps its port but answers nothing, once, and its recovery", async () => {
    let frozen = false;
    const held: http.ServerResponse[] = [];
    let answered = 0;
    const server = http.createServer((_req, res) => {
      if (frozen) return held.push(res);
      answered += 1;
      res.writeHead(401).end();
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v2/`;
    const events: string[] = [];
    const watchdog = startWatchdog({ url, intervalMs: 200, timeoutMs: 1000, failures: 3, onStuck: (reason) => events.push(`stuck: ${reason}`), onAnswering: () => events.push("answering") });
    const until = async (check: () => boolean) => {
      const deadline = Date.now() + 30_000;
      while (!check() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    };
    try {
      await until(() => answered >= 3);
      expect(events).toEqual([]); // a 401 is an answer
      frozen = true;
      await until(() => events.length > 0);
      await new Promise((r) => setTimeout(r, 1500));
      expect(events).toEqual([`stuck: 3 checks of ${url} failed (last: no answer within 1 s)`]);
      frozen = false;
      await until(() => events.length > 1);
      expect(events[1]).toBe("answering");
    } finally {
      watchdog.stop();
      for (const res of held) res.destroy();
      server.close();
    }
  });

  it("does not count a server that is still starting as stuck", async () => {
    const events: string[] = [];
    const watchdog = startWatchdog({ url: "http://127.0.0.1:9/v2/", intervalMs: 50, timeoutMs: 100, failures: 2, onStuck: () => events.push("stuck"), onAnswering: () => events.push("answering") });
    await new Promise((r) => setTimeout(r, 600));
    watchdog.stop();
    expect(events).toEqual([]);
  });

  it("kills a process together with the children it started (workerd outlives its parent otherwise)", async () => {
    const parent = spawn("sh", ["-c", "sleep 300 & sleep 300 & wait"], { stdio: "ignore" });
    await new Promise((r) => setTimeout(r, 300));
    const stat = (pid: string) => {
      try {
        const text = readFileSync(`/proc/${pid}/stat`, "utf8");
        const [state, ppid] = text.slice(text.lastIndexOf(")") + 2).split(" ");
        return { state, ppid: Number(ppid) };
      } catch {
        return undefined;
      }
    };
    const children = readdirSync("/proc").filter((p) => /^\d+$/.test(p) && stat(p)?.ppid === parent.pid);
    expect(children).toHaveLength(2);
    const exited = new Promise((r) => parent.once("exit", r));
    killProcessTree(parent.pid!);
    await exited;
    await new Promise((r) => setTimeout(r, 200));
    // Gone, or a zombie waiting for init to reap it: either way no longer running.
    const alive = (pid: string) => ![undefined, "Z", "X"].includes(stat(pid)?.state);
    expect(children.filter(alive)).toEqual([]);
  });
});
