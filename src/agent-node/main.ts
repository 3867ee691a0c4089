import { Command, CommanderError } from "commander";
import { agentCommand, ConfigError } from "./cli/agent-command.js";
import { CliError } from "./cli/cli-error.js";
import { devclusterCommand } from "./cli/devcluster-command.js";
import { getCommand } from "./cli/get-command.js";
import { gcCommand } from "./cli/gc-command.js";
import { putCommand } from "./cli/put-command.js";
import { k8sCommand } from "./cli/k8s-command.js";
import { preheatCommand } from "./cli/preheat-command.js";
import { pullCommand } from "./cli/pull-command.js";
import { statusCommand } from "./cli/status-command.js";
import { tokenCommand } from "./cli/token-command.js";

/** `shoal`: the command line of the host agent and its tools. */
const program = new Command("shoal")
  .description("Shoal: a peer-to-peer container registry (host agent and tools)")
  .showHelpAfterError()
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
for (const command of program.commands) command.showHelpAfterError();

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
  if (error instanceof CommanderError) process.exit(error.exitCode);
  const code = (error as NodeJS.ErrnoException).code;
  if (code === "EADDRINUSE") {
    process.stderr.write(`shoal: ${(error as Error).message} (is another agent running?)\n`);
    process.exit(1);
  }
  process.stderr.write(`shoal: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
}
