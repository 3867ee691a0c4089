import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { stringify as toYaml } from "yaml";
import { parseTokenList } from "../shared/auth/credentials.js";
import { PROJECT_ROOT } from "./build-worker.js";

/**
 * `npm start`: the devcluster on the loopback address, each component its own process (as on
 * separate hosts), state under $SHOAL_HOME (default ./.shoal). Stopping one leaves the others up.
 * Ports (ARCHITECTURE.md): edge 15000; agent one 16000/16001/16002; agent two 17000/17001/17002
 * (registry/peer/admin). Tests move them with SHOAL_EDGE_PORT and SHOAL_AGENT_{ONE,TWO}_PORTS.
 */
const home = path.resolve(process.env.SHOAL_HOME ?? ".shoal");
const tsx = path.join(PROJECT_ROOT, "node_modules/.bin/tsx");
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
 * authenticate each other) and, when the edge has SHOAL_PUSH_TOKENS, the first of them as the
 * agents' edge credentials (announces and, with SHOAL_PULL_AUTH, reads need one).
 */
function agentSecretsFile(): string {
  const dir = path.join(home, "secrets");
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const secretFile = path.join(dir, "cluster-secret");
  let clusterSecret: string;
  try {
    clusterSecret = readFileSync(secretFile, "utf8").trim();
  } catch {
    clusterSecret = randomBytes(32).toString("hex");
    writeFileSync(secretFile, `${clusterSecret}\n`, { mode: 0o600 });
  }
  const first = parseTokenList(process.env.SHOAL_PUSH_TOKENS ?? "")[0];
  const file = path.join(dir, "agent-secrets.yaml");
  writeFileSync(file, toYaml({ clusterSecret, ...(first ? { edgeToken: `${first.user}:${first.token}` } : {}) }), { mode: 0o600 });
  return file;
}
const secretsFile = agentSecretsFile();

interface Component {
  name: string;
  args: string[];
}

function agent(name: string, [registry, peer, admin]: [number, number, number]): Component {
  return {
    name,
    args: [
      path.join(PROJECT_ROOT, "src/agent-node/main.ts"),
      "agent",
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
for (const component of components) {
  const child = spawn(tsx, component.args, {
    env: { ...process.env, SHOAL_HOME: home, SHOAL_EDGE_PORT: String(edgePort), WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false" },
    stdio: ["ignore", "inherit", "inherit"],
  });
  children.set(component.name, child);
  child.on("exit", (code, signal) => {
    children.delete(component.name);
    process.stderr.write(`devcluster: ${component.name} exited (${signal ?? code})\n`);
    if (children.size === 0) process.exit(0);
  });
}
process.stderr.write(
  `devcluster: edge ${edgeUrl}; agents on registry ports ${agentPorts("SHOAL_AGENT_ONE_PORTS", [16000, 16001, 16002])[0]} and ${agentPorts("SHOAL_AGENT_TWO_PORTS", [17000, 17001, 17002])[0]}; state in ${home}\n`,
);

let stopping = false;
const stop = (signal: NodeJS.Signals) => {
  if (stopping) return;
  stopping = true;
  for (const child of children.values()) child.kill(signal);
  setTimeout(() => {
    for (const child of children.values()) child.kill("SIGKILL");
    process.exit(1);
  }, 15_000).unref();
};
process.on("SIGINT", () => stop("SIGINT"));
process.on("SIGTERM", () => stop("SIGTERM"));
