import { Command, CommanderError } from "commander";
import { agentCommand, ConfigError } from "./cli/agent-command.js";
import { CliError } from "./cli/cli-error.js";
import { describeTimeout } from "./cli/http.js";
import { devclusterCommand } from "./cli/devcluster-command.js";
import { getCommand } from "./cli/get-command.js";
import { gcCommand } from "./cli/gc-command.js";
import { putCommand } from "./cli/put-command.js";
import { k8sCommand } from "./cli/k8s-command.js";
import { preheatCommand } from "./cli/preheat-command.js";
import { pullCommand } from "./cli/pull-command.js";
import { statusCommand } from "./cli/status-command.js";
import { tokenCommand } from "./cli/token-command.js";
import packageJson from "../../package.json" with { type: "json" };

/** `shoal`: the command line of the host agent and its tools. */
const program = new Command("shoal")
  .description("Shoal: a peer-to-peer container registry (host agent and tools)")
  .version(packageJson.version, "-V, --version", "print the version")
  .addCommand(agentCommand())
  .addCommand(pullCommand())
  .addCommand(putCommand())
  .addCommand(getCommand())
  .addCommand(preheatCommand())
  .addCommand(statusCommand())
  .addCommand(k8sCommand())
  .addCommand(tokenCommand())
  .addCommand(gcCommand())
  .addCommand(devclusterCommand());
// A usage mistake is one line and exit 2 (the README's promise), not the whole help and exit 1.
for (const command of [program, ...program.commands]) {
  command.exitOverride().configureOutput({
    outputError: (message, write) => {
      const name = command === program ? "shoal" : `shoal ${command.name()}`;
      write(`shoal: ${message.replace(/^error: /, "").trim().replace(/\s*\n\s*/g, " ")} (see ${name} --help)\n`);
    },
  });
}
/** commander's exits that are not mistakes: --help, --version. */
const COMMANDER_OK = new Set(["commander.helpDisplayed", "commander.version", "commander.help"]);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CliError) {
    process.stderr.write(`shoal: ${error.message}\n`);
    process.exit(error.exitCode);
  }
  if (error instanceof ConfigError) {
    process.stderr.write(`shoal: ${error.message}\n`);
    process.exit(2);
  }
  if (error instanceof CommanderError) process.exit(COMMANDER_OK.has(error.code) && error.exitCode === 0 ? 0 : 2);
  const code = (error as NodeJS.ErrnoException).code;
  if (code === "EADDRINUSE") {
    process.stderr.write(`shoal: ${(error as Error).message} (is another agent running?)\n`);
    process.exit(1);
  }
  const timeout = describeTimeout(error);
  // Anything else is unexpected: one line, and the stack only when asked for (SHOAL_DEBUG=1).
  const detail = process.env.SHOAL_DEBUG ? ((error as Error).stack ?? String(error)) : (timeout ?? (error as Error).message ?? String(error));
  process.stderr.write(`shoal: ${detail}\n`);
  process.exit(1);
}
