import { Command, InvalidArgumentError } from "commander";
import path from "node:path";
import { createLogger, resolveLogFormat } from "./logger.js";
import { Agent } from "../agent.js";
import { ConfigError, mergeConfig, parseAgentConfig, parseAgentSecrets, readYamlFile } from "../config.js";

interface AgentFlags {
  config?: string;
  secrets?: string;
  edge?: string;
  peerIp?: string;
  peerPort?: number;
  agentServerPort?: number;
  agentRegistryPort?: number;
  zone?: string;
  cluster?: string;
  storeDir?: string;
  storeCapacity?: string;
  listenHost?: string;
  logLevel?: string;
  logFormat?: string;
  instance?: string;
  p2p?: boolean;
  ingressRate?: string;
  egressRate?: string;
  lazyComplete?: string;
}

const port = (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError("a port is an integer from 0 to 65535");
  return n;
};

/** `shoal agent`: flags follow Kraken's agent; a YAML config file may set the rest. */
export function agentCommand(): Command {
  return new Command("agent")
    .description("run the host agent: a registry on localhost backed by the edge and its peers")
    .option("--config <file>", "YAML configuration file")
    .option("--secrets <file>", "YAML file with secrets (edgeToken, clusterSecret)")
    .option("--edge <url>", "the edge's base URL, e.g. http://127.0.0.1:15000")
    .option("--peer-ip <ip>", "address peers reach this agent at")
    .option("--peer-port <port>", "peer-to-peer port", port)
    .option("--agent-server-port <port>", "admin server port (health, metrics, status)", port)
    .option("--agent-registry-port <port>", "registry port docker pulls from", port)
    .option("--zone <zone>", "zone of this host (peers prefer their own)")
    .option("--cluster <cluster>", "cluster of this host")
    .option("--store-dir <dir>", "where blobs are stored")
    .option("--store-capacity <size>", "store capacity, e.g. 20GiB")
    .option("--listen-host <host>", "address the registry and admin ports bind to")
    .option("--log-level <level>", "trace, debug, info, warn, error")
    .option("--log-format <format>", "auto (pretty on a terminal, JSON lines otherwise), json or pretty (default: $SHOAL_LOG_FORMAT or auto)")
    .option("--instance <name>", "this agent's name on every log line (default: the host name)")
    .option("--no-p2p", "fetch every blob from the edge in one stream (no peers)")
    .option("--ingress-rate <size>", "bytes per second taken in from peers and the edge, e.g. 100MiB")
    .option("--egress-rate <size>", "bytes per second sent to peers, e.g. 100MiB")
    .option("--lazy-complete <mode>", "after a Range read of a blob not held: background (fetch the rest behind readers; default) or never")
    .action(async (flags: AgentFlags) => {
      await runAgent(flags);
    });
}

async function runAgent(flags: AgentFlags): Promise<void> {
  const file = flags.config ? await readYamlFile(flags.config) : {};
  const merged = mergeConfig(file, {
    edge: flags.edge,
    peerIp: flags.peerIp,
    peerPort: flags.peerPort,
    agentServerPort: flags.agentServerPort,
    agentRegistryPort: flags.agentRegistryPort,
    zone: flags.zone,
    cluster: flags.cluster,
    listenHost: flags.listenHost,
    store: { dir: flags.storeDir ? path.resolve(flags.storeDir) : undefined, capacity: flags.storeCapacity },
    log: { level: flags.logLevel },
    // commander sets p2p to true unless --no-p2p: only the flag's "off" overrides the file.
    p2p: { enabled: flags.p2p === false ? false : undefined, ingressRate: flags.ingressRate, egressRate: flags.egressRate, lazyComplete: flags.lazyComplete },
  });
  const config = parseAgentConfig(merged, flags.config ? `configuration (${flags.config} and flags)` : "flags");
  const secrets = flags.secrets ? parseAgentSecrets(await readYamlFile(flags.secrets), flags.secrets) : {};
  let format;
  try {
    format = resolveLogFormat(flags.logFormat);
  } catch (error) {
    throw new ConfigError(`--log-format: ${(error as Error).message}`);
  }
  const log = createLogger({ component: "agent", instance: flags.instance, level: config.log.level, format, base: { zone: config.zone, cluster: config.cluster } });
  // Secrets are never logged; the config holds none.
  log.info({ config }, "configuration");
  const agent = new Agent(config, secrets, log);
  await agent.start();

  let stopping: Promise<void> | undefined;
  const shutdown = (signal: string) => {
    stopping ??= (async () => {
      log.info({ signal }, "shutting down");
      const timer = setTimeout(() => {
        log.error("shutdown timed out");
        process.exit(1);
      }, 10_000);
      timer.unref();
      await agent.stop();
      process.exit(0);
    })();
  };
  process.on("SIGINT", () => shutdown("SIGINT"));
  process.on("SIGTERM", () => shutdown("SIGTERM"));
}

export { ConfigError };
