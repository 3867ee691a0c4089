import { randomBytes } from "node:crypto";
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
  memoryLimit: string;
}

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
    .option("--cluster-secret <hex>", "the peers' cluster secret (default: a new random one)")
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
  const clusterSecret = flags.clusterSecret ?? randomBytes(32).toString("hex");
  if (clusterSecret.length < 32) throw new CliError("--cluster-secret must be at least 32 characters", 2);
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
  const secrets = { clusterSecret, ...(flags.edgeToken ? { edgeToken: flags.edgeToken } : {}) };
  const probe = (failureThreshold: number) => ({
    httpGet: { host: "127.0.0.1", path: "/health", port: PORTS.admin },
    periodSeconds: 10,
    timeoutSeconds: 3,
    failureThreshold,
  });
  const documents = [
    { apiVersion: "v1", kind: "Namespace", metadata: { name: flags.namespace, labels: LABELS } },
    { apiVersion: "v1", kind: "Secret", metadata: metadata("shoal-agent-secrets"), type: "Opaque", stringData: { "secrets.yaml": stringify(secrets) } },
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
              { name: "secrets", secret: { secretName: "shoal-agent-secrets", defaultMode: 0o400 } },
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
    "# The Secret holds the cluster secret: keep this file out of version control.",
  ].join("\n");
  return `${header}\n${documents.map((d) => stringify(d)).join("---\n")}`;
}
