import { Command } from "commander";
import { AgentClient } from "./agent-client.js";
import { formatBytes } from "./progress.js";

/** `shoal status`: an agent's store, bytes by source and swarms, for a person (or --json). */
export function statusCommand(): Command {
  return new Command("status")
    .description("show an agent's store, its bytes by source and its swarms")
    .option("--admin <url>", "the agent's admin URL", "http://127.0.0.1:16002")
    .option("--json", "print the raw JSON status")
    .action(async (flags: { admin: string; json?: boolean }) => {
      const status = await new AgentClient(flags.admin, flags.admin).status();
      if (flags.json) return void process.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
      const { store } = status;
      const lines = [
        `agent ${status.peerId.slice(0, 12)} (zone ${status.zone}, cluster ${status.cluster}), up ${status.uptimeSeconds} s, edge ${status.edge}`,
        `store: ${formatBytes(store.bytes)} of ${formatBytes(store.capacityBytes)} (${((100 * store.bytes) / Math.max(1, store.capacityBytes)).toFixed(1)}%), ${store.blobs} blobs, ${store.pinned} in use`,
        `fetched: ${formatBytes(status.bytesBySource.peer ?? 0)} from peers, ${formatBytes(status.bytesBySource.origin ?? 0)} from the edge`,
      ];
      const swarms = status.swarms;
      lines.push(swarms.length === 0 ? "swarms: none" : `swarms (${swarms.length}):`);
      for (const swarm of swarms) {
        const pieces = swarm.pieces ? ` ${swarm.have ?? 0}/${swarm.pieces} pieces` : "";
        const peers = swarm.peers !== undefined ? ` ${swarm.peers} peers` : "";
        lines.push(`  ${swarm.role.padEnd(11)} ${swarm.digest.slice(0, 19)}…${pieces}${peers}`);
      }
      for (const download of status.downloads) {
        lines.push(`  download    ${download.digest.slice(0, 19)}… ${formatBytes(download.written)}${download.size ? ` of ${formatBytes(download.size)}` : ""} (${download.state})`);
      }
      process.stdout.write(`${lines.join("\n")}\n`);
    });
}
