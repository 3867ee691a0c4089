import { Command } from "commander";
import { AgentClient, type PreheatProgress } from "./agent-client.js";
import { CliError } from "./cli-error.js";
import { imageArgument } from "./image-source.js";
import { Progress, formatBytes } from "./progress.js";

interface PreheatFlags {
  admin: string[];
  wait: boolean;
  timeout: string;
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

/** `shoal preheat IMAGE`: agents fetch an image (through their swarms) before anything pulls it. */
export function preheatCommand(): Command {
  return new Command("preheat")
    .description("have agents fetch an image into their stores before it is needed (every platform of an index)")
    .argument("<image>", "repo:tag or repo@sha256:…")
    .option("--admin <url>", "an agent's admin URL; repeat for several agents (default http://127.0.0.1:16002)", collect)
    .option("--no-wait", "start the fetches and return")
    .option("--timeout <seconds>", "give up waiting after this long", "3600")
    .action(async (imageText: string, flags: PreheatFlags) => {
      await preheat(imageText, flags);
    });
}

async function preheat(imageText: string, flags: PreheatFlags): Promise<void> {
  imageArgument(imageText); // a bad reference fails here, once, not at every agent
  const agents = (flags.admin?.length ? flags.admin : ["http://127.0.0.1:16002"]).map((admin) => new AgentClient(admin, admin));
  let states = await Promise.all(agents.map((agent) => agent.preheat(imageText)));
  const size = (state: PreheatProgress) => state.blobs.reduce((n, b) => n + b.size, 0);
  const written = (state: PreheatProgress) => state.blobs.reduce((n, b) => n + b.written, 0);
  if (!flags.wait) {
    states.forEach((state, i) => process.stdout.write(`${agents[i]!.admin}: ${state.done ? "already has" : "fetching"} ${imageText} (${state.blobs.length} blobs, ${formatBytes(size(state))})\n`));
    return;
  }
  const progress = new Progress();
  const bars = states.map((state, i) => progress.bar(new URL(agents[i]!.admin).host, size(state)));
  const shown = states.map(() => 0);
  const deadline = Date.now() + Number(flags.timeout) * 1000;
  try {
    for (;;) {
      states.forEach((state, i) => {
        const now = written(state);
        bars[i]!.add(now - shown[i]!);
        shown[i] = now;
      });
      const failed = states.flatMap((state, i) => state.blobs.filter((b) => b.state === "failed").map((b) => `${agents[i]!.admin}: ${b.digest}: ${b.error}`));
      if (failed.length > 0) throw new CliError(`preheat of ${imageText} failed:\n  ${failed.join("\n  ")}`);
      if (states.every((state) => state.done)) break;
      if (Date.now() > deadline) throw new CliError(`preheat of ${imageText} did not finish in ${flags.timeout} s`);
      await new Promise((r) => setTimeout(r, 500));
      states = await Promise.all(agents.map((agent, i) => (states[i]!.done ? states[i]! : agent.preheat(imageText))));
    }
  } finally {
    bars.forEach((bar) => bar.done());
    progress.stop();
  }
  for (const [i, state] of states.entries()) {
    process.stdout.write(`${agents[i]!.admin}: ${imageText} (${state.digest}) in the store: ${state.blobs.length} blobs, ${formatBytes(size(state))}\n`);
  }
}
