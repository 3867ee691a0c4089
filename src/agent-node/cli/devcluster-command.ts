import { Command } from "commander";
import { CliError } from "./cli-error.js";

/** `shoal devcluster`: what `npm start` runs (an edge under miniflare and two agents), from a source checkout. */
export function devclusterCommand(): Command {
  return new Command("devcluster")
    .description("run the local devcluster (edge on 15000, agents on 16000 and 17000; state in $SHOAL_HOME or ./.shoal)")
    .action(async () => {
      // Not bundled into dist/shoal.mjs (it needs miniflare): loaded from the sources beside this file.
      const entry = new URL("../../devcluster/main.ts", import.meta.url).href;
      try {
        await import(entry);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "ERR_MODULE_NOT_FOUND") {
          throw new CliError("the devcluster runs from a source checkout with its dev dependencies: npm install && npm start");
        }
        throw error;
      }
    });
}
