import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { Command } from "commander";
import { stringify } from "yaml";
import { CliError } from "./cli-error.js";

interface K8sFlags {
  edge: string;
  namespace: string;
  image: string;
  cluster: string;
  storeCapacity: string;
  edgeToken?: string;
  clusterSecret?: string;
  clusterSecretFile?: string;
  existingSecret?: string;
  generateClusterSecret?: boolean;
  memoryLimit: string;
}

/** The image runs the agent as this user (the official Node images' `node` user). */
export const AGENT_UID = 1000;

const LABELS = { "app.kubernetes.io/name": "shoal-agent", "app.kubernetes.io/part-of": "shoal" };
const PORTS = { registry: 16000, peer: 16001, admin: 16002 };

/**
 * `shoal k8s --edge URL`: the manifests that run an agent on every node. Host networking, so the
 * node's containerd reaches the agent at 127.0.0.1:16000 (its hosts.toml mirror) and peers reach it
 * at the node's IP; the store on a hostPath, so it outlives the pod; probes on the admin port.
 */
export function k8sCommand(): Command {
  return new Command("k8s")
    .description("print Kubernetes manifests (Namespace, Secret, ConfigMap, DaemonSet) that run the agent on every node")
    .requiredOption("--edge <url>", "the edge's base URL, e.g. https://shoal-edge.example.workers.dev")
    .option("--namespace <name>", "namespace to run in", "shoal")
    .option("--image <image>", "container image with the agent (node and dist/shoal.mjs from npm run build:agent)", "shoal-agent:0.1.0")
    .option("--cluster <name>", "cluster name agents announce (peers prefer their own)", "k8s")
    .option("--store-capacity <size>", "store capacity on each node", "50GiB")
    .option("--memory-limit <size>", "the agent container's memory limit", "1Gi")
    .option("--edge-token <user:token>", "credentials for an edge with SHOAL_PUSH_TOKENS (else set edgeToken in the Secret)")
    .option("--cluster-secret-file <file>", "read the peers' cluster secret from this file (e.g. from shoal token --cluster-secret)")
    .option("--existing-secret <name>", "use this Secret (key secrets.yaml: clusterSecret, edgeToken) instead of emitting one")
    .option("--generate-cluster-secret", "make a new cluster secret (re-applying the output then rotates it)")
    .option("--cluster-secret <hex>", "the peers' cluster secret itself (visible in ps and shell history: prefer --cluster-secret-file)")
    .action((flags: K8sFlags) => {
      process.stdout.write(k8sManifests(flags));
    });
}

export function k8sManifests(flags: K8sFlags): string {
  let edge: URL;
  try {
    edge = new URL(flags.edge);
  } catch {
    throw new CliError(`--edge ${JSON.stringify(flags.edge)} is not a URL (e.g. https://shoal-edge.example.workers.dev)`, 2);
  }
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(flags.namespace)) throw new CliError(`--namespace ${JSON.stringify(flags.namespace)} is not a Kubernetes name`, 2);
  const clusterSecret = clusterSecretOf(flags);
  const metadata = (name: string) => ({ name, namespace: flags.namespace, labels: LABELS });
  const agentConfig = {
    edge: edge.href.replace(/\/$/, ""),
    cluster: flags.cluster,
    listenHost: "127.0.0.1",
    peerListenHost: "0.0.0.0",
    agentRegistryPort: PORTS.registry,
    peerPort: PORTS.peer,
    agentServerPort: PORTS.admin,
    store: { dir: "/var/lib/shoal/store", capacity: flags.storeCapacity },
    log: { level: "info" },
  };
  const secretName = flags.existingSecret ?? "shoal-agent-secrets";
  const secrets = { clusterSecret, ...(flags.edgeToken ? { edgeToken: flags.edgeToken } : {}) };
  const probe = (failureThreshold: number) => ({
    httpGet: { host: "127.0.0.1", path: "/health", port: PORTS.admin },
    periodSeconds: 10,
    timeoutSeconds: 3,
    failureThreshold,
  });
  const documents = [
    { apiVersion: "v1", kind: "Namespace", metadata: { name: flags.namespace, labels: LABELS } },
    ...(flags.existingSecret ? [] : [{ apiVersion: "v1", kind: "Secret", metadata: metadata(secretName), type: "Opaque", stringData: { "secrets.yaml": stringify(secrets) } }]),
    { apiVersion: "v1", kind: "ConfigMap", metadata: metadata("shoal-agent-config"), data: { "agent.yaml": stringify(agentConfig) } },
    {
      apiVersion: "apps/v1",
      kind: "DaemonSet",
      metadata: metadata("shoal-agent"),
      spec: {
        selector: { matchLabels: LABELS },
        updateStrategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: "10%" } },
        template: {
          metadata: { labels: LABELS },
          spec: {
            hostNetwork: true,
            dnsPolicy: "ClusterFirstWithHostNet",
            priorityClassName: "system-node-critical",
            tolerations: [{ operator: "Exists" }],
            terminationGracePeriodSeconds: 15,
            // fsGroup: the kubelet makes the Secret's file group-readable by the agent (it is root's).
            securityContext: { runAsUser: AGENT_UID, runAsGroup: AGENT_UID, runAsNonRoot: true, fsGroup: AGENT_UID },
            // The kubelet creates the hostPath as root: hand it (and a store an older, root-run agent
            // left) to the agent's user. Only CAP_CHOWN, with node from the same image.
            initContainers: [
              {
                name: "store-owner",
                image: flags.image,
                command: ["/usr/local/bin/node", "-e", CHOWN_SCRIPT],
                securityContext: {
                  runAsUser: 0,
                  runAsNonRoot: false,
                  allowPrivilegeEscalation: false,
                  readOnlyRootFilesystem: true,
                  capabilities: { drop: ["ALL"], add: ["CHOWN"] },
                },
                volumeMounts: [{ name: "store", mountPath: "/var/lib/shoal" }],
              },
            ],
            containers: [
              {
                name: "agent",
                image: flags.image,
                args: ["agent", "--config=/etc/shoal/agent.yaml", "--secrets=/etc/shoal/secrets/secrets.yaml", "--peer-ip=$(HOST_IP)"],
                env: [{ name: "HOST_IP", valueFrom: { fieldRef: { fieldPath: "status.hostIP" } } }],
                ports: Object.entries(PORTS).map(([name, port]) => ({ name, containerPort: port, hostPort: port, protocol: "TCP" })),
                readinessProbe: probe(1),
                livenessProbe: probe(6),
                resources: { requests: { cpu: "250m", memory: "256Mi" }, limits: { memory: flags.memoryLimit } },
                securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ["ALL"] } },
                volumeMounts: [
                  { name: "config", mountPath: "/etc/shoal/agent.yaml", subPath: "agent.yaml", readOnly: true },
                  { name: "secrets", mountPath: "/etc/shoal/secrets", readOnly: true },
                  { name: "store", mountPath: "/var/lib/shoal" },
                ],
              },
            ],
            volumes: [
              { name: "config", configMap: { name: "shoal-agent-config" } },
              { name: "secrets", secret: { secretName, defaultMode: 0o440 } },
              { name: "store", hostPath: { path: "/var/lib/shoal", type: "DirectoryOrCreate" } },
            ],
          },
        },
      },
    },
  ];
  const header = [
    "# Shoal agent on every node: kubectl apply -f this file.",
    "# Nodes' containerd: point registries at the agent with /etc/containerd/certs.d/<registry>/hosts.toml",
    '#   [host."http://127.0.0.1:16000"] capabilities = ["pull", "resolve"]   (see the README)',
    flags.existingSecret
      ? `# The cluster secret and edge credentials come from the Secret ${JSON.stringify(flags.existingSecret)} (key secrets.yaml), managed outside this file.`
      : "# The Secret holds the cluster secret: keep this file out of version control.",
  ].join("\n");
  return `${header}\n${documents.map((d) => stringify(d)).join("---\n")}`;
}

/** Owns /var/lib/shoal and everything under it by the agent's user (what is already its own is left). */
const CHOWN_SCRIPT = [
  'const fs = require("node:fs"), path = require("node:path");',
  `const own = (f) => { const s = fs.lstatSync(f); if (s.uid !== ${AGENT_UID}) fs.lchownSync(f, ${AGENT_UID}, ${AGENT_UID}); if (s.isDirectory()) for (const e of fs.readdirSync(f)) own(path.join(f, e)); };`,
  'own("/var/lib/shoal");',
].join(" ");

/**
 * The cluster secret comes from a file or the command line, or is made anew only when asked:
 * a new one on every run would rotate the cluster's secret whenever the output is re-applied.
 */
function clusterSecretOf(flags: K8sFlags): string | undefined {
  const given = [flags.clusterSecret !== undefined, flags.clusterSecretFile !== undefined, flags.existingSecret !== undefined, flags.generateClusterSecret === true];
  if (given.filter(Boolean).length > 1) throw new CliError("give one of --cluster-secret-file, --existing-secret, --generate-cluster-secret, --cluster-secret", 2);
  if (flags.existingSecret !== undefined) {
    if (!/^[a-z0-9]([-.a-z0-9]*[a-z0-9])?$/.test(flags.existingSecret)) throw new CliError(`--existing-secret ${JSON.stringify(flags.existingSecret)} is not a Kubernetes name`, 2);
    if (flags.edgeToken) throw new CliError("--edge-token goes into the existing Secret's secrets.yaml (edgeToken), not on the command line here", 2);
    return undefined;
  }
  let secret = flags.clusterSecret;
  if (flags.clusterSecretFile !== undefined) {
    try {
      secret = readFileSync(flags.clusterSecretFile, "utf8").trim();
    } catch (error) {
      throw new CliError(`cannot read --cluster-secret-file ${flags.clusterSecretFile}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, 2);
    }
  }
  if (flags.generateClusterSecret) secret = randomBytes(32).toString("hex");
  if (secret === undefined) {
    throw new CliError(
      "the agents need their cluster secret: --cluster-secret-file FILE, --existing-secret NAME (a Secret you keep, key secrets.yaml), or --generate-cluster-secret (a new one; re-applying then rotates it)",
      2,
    );
  }
  if (secret.length < 32) throw new CliError("the cluster secret must be at least 32 characters (shoal token --cluster-secret makes one)", 2);
  return secret;
}
