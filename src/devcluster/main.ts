import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { stringify as toYaml } from "yaml";
import { parseTokenList } from "../shared/auth/credentials.js";
import { edgeSettings, type Env } from "../worker/env.js";
import { PROJECT_ROOT } from "./build-worker.js";
import { createLogger } from "../agent-node/cli/logger.js";
import { startWatchdog } from "./watchdog.js";
import { killProcessTree } from "./process-tree.js";
import { AGENT_ENV, AGENT_NODE_FLAGS } from "../agent-node/node-flags.js";

/**
 * `npm start`: the devcluster on the loopback address, each component its own process (as on
 * separate hosts), state under $SHOAL_HOME (default ./.shoal). Stopping one leaves the others up.
 * Ports (ARCHITECTURE.md): edge 15000; agent one 16000/16001/16002; agent two 17000/17001/17002
 * (registry/peer/admin). Tests move them with SHOAL_EDGE_PORT and SHOAL_AGENT_{ONE,TWO}_PORTS.
 */
const log = createLogger({ component: "devcluster", instance: "main" });
const home = path.resolve(process.env.SHOAL_HOME ?? ".shoal");
const edgePort = Number(process.env.SHOAL_EDGE_PORT ?? 15000);
const edgeUrl = `http://127.0.0.1:${edgePort}`;

function agentPorts(variable: string, fallback: [number, number, number]): [number, number, number] {
  const value = process.env[variable];
  if (!value) return fallback;
  const ports = value.split(",").map(Number);
  if (ports.length !== 3 || ports.some((p) => !Number.isInteger(p))) throw new Error(`${variable} must be registry,peer,admin ports`);
  return ports as [number, number, number];
}

/**
 * The agents' secrets file: the cluster secret (made once, kept under $SHOAL_HOME, so peers always
 * authenticate each other) and the agents' edge credentials (announces, and reads of repositories
 * that are not anonymous, need an account). With SHOAL_AUTH, a robot `shoal-agent` that may pull
 * everything is added to the setting the edge gets (its secret made once, like the cluster secret);
 * with only SHOAL_PUSH_TOKENS, the first of them. Clients' own pull rights are still checked by
 * the agents, so the robot's reach does not become theirs.
 */
function agentSecretsFile(): { file: string; edgeAuth: string | undefined } {
  const dir = path.join(home, "secrets");
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const clusterSecret = persistedSecret(path.join(dir, "cluster-secret"));
  let edgeToken: string | undefined;
  let edgeAuth = process.env.SHOAL_AUTH;
  if (edgeAuth?.trim()) {
    const agentSecret = persistedSecret(path.join(dir, "agent-token"));
    try {
      const setting = JSON.parse(edgeAuth) as { users?: Record<string, unknown> };
      setting.users = { ...(setting.users ?? {}), "shoal-agent": { password: agentSecret, access: [{ repository: "*", actions: ["pull"] }] } };
      edgeAuth = JSON.stringify(setting);
      edgeToken = `shoal-agent:${agentSecret}`;
    } catch {
      // Not JSON: the check below refuses it, in one line.
    }
  } else {
    const first = safeTokens()[0];
    if (first) edgeToken = `${first.user}:${first.token}`;
  }
  const file = path.join(dir, "agent-secrets.yaml");
  writeFileSync(file, toYaml({ clusterSecret, ...(edgeToken ? { edgeToken } : {}) }), { mode: 0o600 });
  return { file, edgeAuth };
}

function persistedSecret(file: string): string {
  try {
    return readFileSync(file, "utf8").trim();
  } catch {
    const secret = randomBytes(32).toString("hex");
    writeFileSync(file, `${secret}\n`, { mode: 0o600 });
    return secret;
  }
}

function safeTokens() {
  try {
    return parseTokenList(process.env.SHOAL_PUSH_TOKENS ?? "");
  } catch {
    return [];
  }
}

const { file: secretsFile, edgeAuth } = agentSecretsFile();
// Fail closed before anything starts: auth settings the edge would refuse stop the devcluster, in one line.
try {
  edgeSettings({ ...process.env, SHOAL_AUTH: edgeAuth } as unknown as Env);
} catch (error) {
  process.stderr.write(`devcluster: refusing to start: ${(error as Error).message}\n`);
  process.exit(2); // bad input, as the CLI's usage errors
}

interface Component {
  name: string;
  /** Flags for node itself (V8's), before the loader. */
  nodeFlags?: readonly string[];
  /** Environment of its own (the agents' AGENT_ENV). */
  env?: Readonly<Record<string, string>>;
  args: string[];
}

function agent(name: string, [registry, peer, admin]: [number, number, number]): Component {
  return {
    name,
    nodeFlags: AGENT_NODE_FLAGS,
    env: AGENT_ENV,
    args: [
      path.join(PROJECT_ROOT, "src/agent-node/main.ts"),
      "agent",
      `--instance=${name}`,
      `--edge=${edgeUrl}`,
      `--store-dir=${path.join(home, name)}`,
      "--peer-ip=127.0.0.1",
      `--agent-registry-port=${registry}`,
      `--peer-port=${peer}`,
      `--agent-server-port=${admin}`,
      "--zone=local",
      "--cluster=devcluster",
      `--secrets=${secretsFile}`,
      ...(process.env.SHOAL_AGENT_STORE_CAPACITY ? [`--store-capacity=${process.env.SHOAL_AGENT_STORE_CAPACITY}`] : []),
    ],
  };
}

const components: Component[] = [
  { name: "edge", args: [path.join(PROJECT_ROOT, "src/devcluster/edge-main.ts")] },
  agent("agent-one", agentPorts("SHOAL_AGENT_ONE_PORTS", [16000, 16001, 16002])),
  agent("agent-two", agentPorts("SHOAL_AGENT_TWO_PORTS", [17000, 17001, 17002])),
];

const children = new Map<string, ChildProcess>();
/** Components being restarted on purpose (their exit starts them again). */
const restarting = new Set<string>();

function startComponent(component: Component): void {
  // node with tsx's loader, not tsx's wrapper: the child is then the component itself, so a
  // signal (or a watchdog's SIGKILL) reaches it and not only a wrapper.
  const child = spawn(process.execPath, [...(component.nodeFlags ?? []), "--import", "tsx", ...component.args], {
    cwd: PROJECT_ROOT,
    env: { ...process.env, ...component.env, ...(edgeAuth !== undefined ? { SHOAL_AUTH: edgeAuth } : {}), SHOAL_HOME: home, SHOAL_EDGE_PORT: String(edgePort), WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false" },
    stdio: ["ignore", "inherit", "inherit"],
  });
  children.set(component.name, child);
  child.on("exit", (code, signal) => {
    children.delete(component.name);
    if (restarting.delete(component.name) && !stopping) {
      log.warn({ exit: signal ?? code }, `${component.name} stopped; starting it again`);
      startComponent(component);
      return;
    }
    log[stopping ? "info" : "error"]({ exit: signal ?? code }, `${component.name} exited`);
    if (children.size === 0) process.exit(0);
  });
}
for (const component of components) startComponent(component);

// The edge's process can stay up while answering nothing: say so, and start it again.
const WATCHDOG_SECONDS = Number(process.env.SHOAL_EDGE_WATCHDOG_SECONDS ?? 10);
const watchdog =
  WATCHDOG_SECONDS > 0
    ? startWatchdog({
        url: `${edgeUrl}/v2/`,
        intervalMs: WATCHDOG_SECONDS * 1000,
        timeoutMs: WATCHDOG_SECONDS * 1000,
        failures: 3,
        onStuck: (reason) => {
          const edge = children.get("edge");
          log.error({ reason }, "the edge stopped answering: restarting it");
          if (!edge) return;
          restarting.add("edge");
          if (edge.pid) killProcessTree(edge.pid);
        },
        onAnswering: () => log.info("the edge answers again"),
      })
    : undefined;

log.info(
  `edge ${edgeUrl}; agents on registry ports ${agentPorts("SHOAL_AGENT_ONE_PORTS", [16000, 16001, 16002])[0]} and ${agentPorts("SHOAL_AGENT_TWO_PORTS", [17000, 17001, 17002])[0]}; state in ${home}`,
);

let stopping = false;
const stop = (signal: NodeJS.Signals) => {
  if (stopping) return;
  stopping = true;
  watchdog?.stop();
  for (const child of children.values()) child.kill(signal);
  setTimeout(() => {
    for (const child of children.values()) child.kill("SIGKILL");
    process.exit(1);
  }, 15_000).unref();
};
process.on("SIGINT", () => stop("SIGINT"));
process.on("SIGTERM", () => stop("SIGTERM"));
