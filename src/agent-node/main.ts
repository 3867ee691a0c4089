import { Command, CommanderError } from "commander";
import { agentCommand, ConfigError } from "./cli/agent-command.js";

/** `shoal`: the command line of the host agent and its tools. */
const program = new Command("shoal")
  .description("Shoal: a peer-to-peer container registry (host agent and tools)")
  .showHelpAfterError()
  .addCommand(agentCommand());

try {
  await program.parseAsync(process.argv);
} catch (error) {
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
