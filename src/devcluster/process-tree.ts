import { readdirSync, readFileSync } from "node:fs";

/**
 * A process and all its descendants, the root first (Linux /proc; elsewhere the process alone).
 * An edge's workerd outlives its parent and keeps its port, so stopping an edge means its tree.
 */
export function processTree(rootPid: number): number[] {
  const parents = new Map<number, number[]>();
  try {
    for (const entry of readdirSync("/proc")) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        // "pid (comm) state ppid …": comm may hold spaces and parentheses, so read after the last ')'.
        const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
        const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
        parents.set(ppid, [...(parents.get(ppid) ?? []), Number(entry)]);
      } catch {
        // gone meanwhile
      }
    }
  } catch {
    // no /proc
  }
  const tree = [rootPid];
  for (let i = 0; i < tree.length; i++) tree.push(...(parents.get(tree[i]!) ?? []));
  return tree;
}

/** Sends `signal` (SIGKILL by default) to a process and everything it started, children first. */
export function killProcessTree(pid: number, signal: NodeJS.Signals = "SIGKILL"): void {
  for (const each of processTree(pid).reverse()) {
    try {
      process.kill(each, signal);
    } catch {
      // already gone
    }
  }
}
