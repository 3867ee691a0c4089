import { LimitedLink } from "./lib/link.js";

/**
 * A LimitedLink in a process of its own, so the link's pacing does not share an event loop with
 * the benchmark's clients. argv: target port, rate in bytes/s. Prints its port; on standard input
 * "stats" prints {"down":…, "up":…} and "reset" zeroes the counters.
 */
const [targetPort, rate] = process.argv.slice(2).map(Number);
const link = await new LimitedLink({ host: "127.0.0.1", port: targetPort! }, rate!).start();
process.stdout.write(`${JSON.stringify({ port: link.port })}\n`);
process.stdin.setEncoding("utf8");
let pending = "";
process.stdin.on("data", (text: string) => {
  pending += text;
  for (let at = pending.indexOf("\n"); at >= 0; at = pending.indexOf("\n")) {
    const command = pending.slice(0, at).trim();
    pending = pending.slice(at + 1);
    if (command === "reset") link.resetCounters();
    process.stdout.write(`${JSON.stringify({ down: link.bytesDown, up: link.bytesUp })}\n`);
  }
});
process.stdin.on("end", () => void link.stop().then(() => process.exit(0)));
