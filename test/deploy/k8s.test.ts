/**
 * @module Checks deploy/k8s: every manifest against the Kubernetes schemas (kubernetes-models),
 * then what the schemas cannot know: one Deployment per role, probes, ports and grace period
 * matching the code's defaults, the Service, autoscalers and disruption budgets.
 */
import { test } from "uvu";
import * as assert from "uvu/assert";
import { parse, parseAllDocuments } from "yaml";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { Secret } from "kubernetes-models/v1/Secret";
import { Service } from "kubernetes-models/v1/Service";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import { Ingress } from "kubernetes-models/networking.k8s.io/v1/Ingress";
import { MAX_HEADER_BYTES } from "../../src/http/guard.ts";
import { loadConfig, ROLES } from "../../src/config.ts";
import { CHECK_TIMEOUT_MS, PROBE_PATHS } from "../../src/http/probes.ts";

const DIR = new URL("../../deploy/k8s/", import.meta.url);
const COMPOSE = new URL("../../compose.yaml", import.meta.url);
/** Partitions of the example topics (the consumer definitions' default `partitions`). */
const PARTITIONS = 3;
/** Roles that must autoscale (the issue: `http` and the workers). */
const AUTOSCALED = ["http", "async-worker", "parallel-worker"];
/** Roles that must have a PodDisruptionBudget. */
const BUDGETED = ["http", "scheduler"];

/** Schema-validating model classes by `apiVersion/kind`. */
const MODELS: Record<string, new (data: any) => { validate(): void }> = {
  "v1/ConfigMap": ConfigMap,
  "v1/Secret": Secret,
  "v1/Service": Service,
  "apps/v1/Deployment": Deployment,
  "autoscaling/v2/HorizontalPodAutoscaler": HorizontalPodAutoscaler,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
  "networking.k8s.io/v1/Ingress": Ingress,
};

interface Manifest {
  file: string;
  doc: any;
}

const kustomization = parse(await Deno.readTextFile(new URL("kustomization.yaml", DIR)));
const manifests: Manifest[] = [];
for (const file of kustomization.resources as string[]) {
  const docs = parseAllDocuments(await Deno.readTextFile(new URL(file, DIR)));
  for (const d of docs) {
    if (d.errors.length) throw new Error(`${file}: ${d.errors[0].message}`);
    const doc = d.toJS();
    if (doc !== null) manifests.push({ file, doc });
  }
}
const defaults = loadConfig({});

const name = (m: Manifest) => `${m.file}: ${m.doc.kind} "${m.doc.metadata?.name}"`;
const ofKind = (kind: string) => manifests.filter((m) => m.doc.kind === kind).map((m) => m.doc);
const one = (kind: string) => {
  const all = ofKind(kind);
  assert.is(all.length, 1, `exactly one ${kind}`);
  return all[0];
};
const deployments = ofKind("Deployment");
const container = (d: any) => d.spec.template.spec.containers[0];
const roleOf = (d: any): string | undefined =>
  container(d).env?.find((e: any) => e.name === "ROLE")?.value;
const deploymentOf = (role: string) => deployments.find((d) => roleOf(d) === role)!;
const selects = (selector: Record<string, string>, labels: Record<string, string> = {}) =>
  Object.entries(selector).every(([k, v]) => labels[k] === v);
/** CPU quantity in cores: `2`, `"2"`, `"250m"`. */
const cores = (q: string | number) =>
  typeof q === "number" ? q : q.endsWith("m") ? Number(q.slice(0, -1)) / 1000 : Number(q);
/** The environment a role's pod starts with: its ConfigMap, its Secret, then `env`. */
const podEnv = (d: any): Record<string, string> => {
  const env: Record<string, string> = {};
  for (const from of container(d).envFrom ?? []) {
    const ref = from.configMapRef ?? from.secretRef;
    const source = manifests.find((m) =>
      m.doc.kind === (from.configMapRef ? "ConfigMap" : "Secret") &&
      m.doc.metadata.name === ref.name
    );
    assert.ok(source, `${d.metadata.name}: envFrom "${ref.name}" is in the set`);
    Object.assign(env, source!.doc.data ?? {}, source!.doc.stringData ?? {});
  }
  for (const e of container(d).env ?? []) env[e.name] = e.value;
  return env;
};

test("kustomization.yaml lists every manifest file of deploy/k8s", async () => {
  const files: string[] = [];
  for await (const e of Deno.readDir(DIR)) {
    if (e.isFile && /\.ya?ml$/.test(e.name) && e.name !== "kustomization.yaml") files.push(e.name);
  }
  assert.equal([...kustomization.resources].sort(), files.sort());
});

test("every manifest validates against the Kubernetes schemas", () => {
  assert.ok(manifests.length > 0);
  const problems: string[] = [];
  for (const m of manifests) {
    const Model = MODELS[`${m.doc.apiVersion}/${m.doc.kind}`];
    if (!Model) {
      problems.push(`${name(m)}: no schema model for ${m.doc.apiVersion} ${m.doc.kind}`);
      continue;
    }
    try {
      new Model(m.doc).validate();
    } catch (err) {
      problems.push(`${name(m)}: ${err instanceof Error ? err.message : err}`);
    }
  }
  assert.equal(problems, []);
});

test("the schema validation rejects a broken manifest (it is not a no-op)", () => {
  const broken = structuredClone(deployments[0]);
  container(broken).ports[0].containerPort = "eighty";
  delete broken.spec.selector;
  assert.throws(() => new Deployment(broken).validate(), /containerPort|selector/);
});

test("manifests are namespace-agnostic and every name is unique per kind", () => {
  const seen = new Set<string>();
  for (const m of manifests) {
    assert.is(m.doc.metadata.namespace, undefined, `${name(m)} sets no namespace`);
    const key = `${m.doc.kind}/${m.doc.metadata.name}`;
    assert.not.ok(seen.has(key), `${key} is defined once`);
    seen.add(key);
  }
});

test("every role has exactly one Deployment, with ROLE set to that role alone", () => {
  for (const role of ROLES) {
    assert.is(deployments.filter((d) => roleOf(d) === role).length, 1, `one Deployment of ${role}`);
  }
  assert.is(deployments.length, ROLES.length, "no Deployment without a single role");
});

test("every Deployment runs the one image, selects its own pods and no other role's", () => {
  for (const d of deployments) {
    assert.is(d.spec.template.spec.containers.length, 1);
    assert.is(container(d).image, "svc:latest", d.metadata.name);
    assert.ok(selects(d.spec.selector.matchLabels, d.spec.template.metadata.labels));
    for (const other of deployments.filter((o) => o !== d)) {
      assert.not.ok(
        selects(d.spec.selector.matchLabels, other.spec.template.metadata.labels),
        `${d.metadata.name}'s selector does not match ${other.metadata.name}'s pods`,
      );
    }
  }
});

test("every pod's environment passes the program's own configuration check", () => {
  for (const d of deployments) {
    const config = loadConfig(podEnv(d));
    assert.equal(config.roles, [roleOf(d)], d.metadata.name);
    assert.ok(config.redisUrl && config.kafkaBrokers, `${d.metadata.name} uses real brokers`);
  }
});

test("the Secret holds REDIS_URL and API_KEYS as marked placeholders", () => {
  const secret = one("Secret");
  const values = { ...secret.data, ...secret.stringData };
  assert.equal(Object.keys(values).sort(), ["API_KEYS", "REDIS_URL"]);
  for (const [key, value] of Object.entries(values)) {
    assert.match(String(value), /CHANGE-ME/, `${key} is marked as a placeholder`);
  }
  const config = one("ConfigMap");
  for (
    const key of [
      "KEY_PREFIX",
      "TOPIC_PREFIX",
      "LOG_LEVEL",
      "KAFKA_BROKERS",
      "SHUTDOWN_TIMEOUT_MS",
      "PARALLEL_MAX_WORKERS",
    ]
  ) assert.ok(key in config.data, `ConfigMap has ${key}`);
});

test("the container port is the code's default PORT, named http, and PORT is not overridden", () => {
  for (const d of deployments) {
    assert.equal(container(d).ports, [
      { name: "http", containerPort: defaults.port, protocol: "TCP" },
    ]);
    assert.is(podEnv(d).PORT, undefined, `${d.metadata.name} keeps the default PORT`);
  }
});

test("probes use the code's paths on the http port; readiness outwaits one check", () => {
  for (const d of deployments) {
    const c = container(d);
    const probes = {
      startupProbe: PROBE_PATHS.health,
      livenessProbe: PROBE_PATHS.health,
      readinessProbe: PROBE_PATHS.ready,
    };
    for (const [probe, path] of Object.entries(probes)) {
      assert.equal(c[probe]?.httpGet, { path, port: "http" }, `${d.metadata.name} ${probe}`);
    }
    assert.ok(
      c.readinessProbe.timeoutSeconds * 1000 > CHECK_TIMEOUT_MS,
      `${d.metadata.name}: readiness timeout longer than CHECK_TIMEOUT_MS`,
    );
    const startupBudget = c.startupProbe.periodSeconds * c.startupProbe.failureThreshold;
    assert.ok(startupBudget >= 60, `${d.metadata.name}: at least 60 s to start`);
  }
});

test("terminationGracePeriodSeconds outlasts SHUTDOWN_TIMEOUT_MS plus the preStop pause", () => {
  const configured = Number(one("ConfigMap").data.SHUTDOWN_TIMEOUT_MS);
  const timeoutS = Math.max(defaults.shutdownTimeoutMs, configured) / 1000;
  assert.is(defaults.shutdownTimeoutMs, 25000, "the documented default");
  for (const d of deployments) {
    const preStop = container(d).lifecycle?.preStop;
    // The image is distroless: an `exec` hook has no shell to run.
    assert.equal(Object.keys(preStop ?? {}), ["sleep"], `${d.metadata.name} preStop is sleep`);
    const pause = preStop.sleep.seconds;
    assert.ok(pause >= 1, `${d.metadata.name} pauses`);
    assert.ok(
      d.spec.template.spec.terminationGracePeriodSeconds > timeoutS + pause,
      `${d.metadata.name}: grace > ${timeoutS} + ${pause}`,
    );
  }
  assert.ok(container(deploymentOf("http")).lifecycle.preStop.sleep.seconds >= 5);
});

test("pods run as non-root on a read-only root, without privilege escalation or capabilities", () => {
  for (const d of deployments) {
    const pod = d.spec.template.spec;
    const c = container(d);
    const sc = { ...pod.securityContext, ...c.securityContext };
    assert.is(sc.runAsNonRoot, true, d.metadata.name);
    assert.ok(Number.isInteger(sc.runAsUser) && sc.runAsUser > 0, "numeric non-root uid");
    assert.is(sc.readOnlyRootFilesystem, true);
    assert.is(sc.allowPrivilegeEscalation, false);
    assert.ok(sc.capabilities?.drop?.includes("ALL"));
    assert.is(pod.automountServiceAccountToken, false);
    const tmp = c.volumeMounts?.find((v: any) => v.mountPath === "/tmp");
    assert.ok(
      pod.volumes.find((v: any) => v.name === tmp?.name)?.emptyDir,
      "/tmp is an emptyDir",
    );
  }
});

test("every pod requests CPU and memory and has a memory limit", () => {
  for (const d of deployments) {
    const r = container(d).resources;
    assert.ok(cores(r.requests.cpu) > 0, d.metadata.name);
    assert.ok(r.requests.memory && r.limits.memory, d.metadata.name);
  }
});

test("parallel-worker gets one whole CPU per PARALLEL_MAX_WORKERS thread", () => {
  const threads = Number(one("ConfigMap").data.PARALLEL_MAX_WORKERS);
  const r = container(deploymentOf("parallel-worker")).resources;
  assert.is(cores(r.requests.cpu), threads);
  assert.is(cores(r.limits.cpu), threads);
});

test("pods carry Prometheus scrape annotations for /metrics on the http port", () => {
  for (const d of deployments) {
    const a = d.spec.template.metadata.annotations;
    assert.equal(
      [a["prometheus.io/scrape"], a["prometheus.io/port"], a["prometheus.io/path"]],
      ["true", String(defaults.port), PROBE_PATHS.metrics],
      d.metadata.name,
    );
  }
});

test("the Service selects the http pods only and targets their http port", () => {
  const service = one("Service");
  const http = deploymentOf("http");
  assert.ok(selects(service.spec.selector, http.spec.template.metadata.labels));
  for (const d of deployments.filter((d) => d !== http)) {
    assert.not.ok(selects(service.spec.selector, d.spec.template.metadata.labels), d.metadata.name);
  }
  const names = container(http).ports.map((p: any) => p.name);
  for (const port of service.spec.ports) assert.ok(names.includes(port.targetPort));
});

test("autoscalers target existing Deployments; consumers stop at the partition count", async () => {
  const compose = parse(await Deno.readTextFile(COMPOSE), { merge: true });
  const brokerPartitions = Number(compose.services.kafka.environment.KAFKA_NUM_PARTITIONS);
  const hpas = ofKind("HorizontalPodAutoscaler");
  const roleOfHpa = (h: any) => {
    const target = deployments.find((d) => d.metadata.name === h.spec.scaleTargetRef.name);
    assert.ok(target && h.spec.scaleTargetRef.kind === "Deployment", h.metadata.name);
    return roleOf(target)!;
  };
  const scaled = hpas.map(roleOfHpa);
  for (const role of AUTOSCALED) assert.ok(scaled.includes(role), `${role} autoscales`);
  for (const h of hpas) {
    assert.is(h.apiVersion, "autoscaling/v2");
    assert.ok(h.spec.minReplicas >= 1 && h.spec.minReplicas <= h.spec.maxReplicas);
    const role = roleOfHpa(h);
    if (role === "consumer" || role === "bulk-consumer") {
      assert.ok(h.spec.maxReplicas <= Math.min(PARTITIONS, brokerPartitions), h.metadata.name);
    }
    const d = deploymentOf(role);
    assert.is(d.spec.replicas, undefined, `${d.metadata.name}: the HPA owns replicas`);
  }
  for (const d of deployments.filter((d) => !scaled.includes(roleOf(d)!))) {
    assert.ok(d.spec.replicas >= 2, `${d.metadata.name} without an HPA runs 2+ replicas`);
  }
});

test("disruption budgets cover http and scheduler, each selecting one role's pods", () => {
  const budgeted = ofKind("PodDisruptionBudget").map((p) => {
    assert.is(p.apiVersion, "policy/v1");
    const matched = deployments.filter((d) =>
      selects(p.spec.selector.matchLabels, d.spec.template.metadata.labels)
    );
    assert.is(matched.length, 1, `${p.metadata.name} selects one Deployment's pods`);
    return roleOf(matched[0]);
  });
  for (const role of BUDGETED) assert.ok(budgeted.includes(role), `${role} has a budget`);
});

test("the Ingress fronts svc-http with the body limit and bounded proxy timeouts", () => {
  const ingress = one("Ingress");
  const backend = ingress.spec.rules[0].http.paths[0].backend.service;
  assert.is(backend.name, one("Service").metadata.name);
  assert.is(backend.port.name, "http");
  const a = ingress.metadata.annotations;
  assert.is(
    a["nginx.ingress.kubernetes.io/proxy-body-size"],
    `${defaults.bodyLimitBytes / 2 ** 20}m`,
  );
  assert.is(a["nginx.ingress.kubernetes.io/proxy-request-buffering"], "on");
  // Long-polls (?wait=30) fit in the read timeout.
  assert.ok(Number(a["nginx.ingress.kubernetes.io/proxy-read-timeout"]) > 30);
});

test("the ingress-nginx controller settings bound header, body and idle time and header size", async () => {
  const config = parse(
    await Deno.readTextFile(new URL("../ingress-nginx/controller-config.yaml", DIR)),
  );
  new ConfigMap(config).validate();
  const data = config.data as Record<string, string>;
  for (const key of ["client-header-timeout", "client-body-timeout", "keep-alive"]) {
    assert.ok(Number(data[key]) > 0 && Number(data[key]) <= 60, `${key} ${data[key]}`);
  }
  const [count, size] = data["large-client-header-buffers"].split(" ");
  const bytes = Number(size.replace("k", "")) * 1024;
  // Above the app's own 431 for one header, and all of them under Deno's ~64 KiB.
  assert.ok(bytes > MAX_HEADER_BYTES && Number(count) * bytes < 64 * 1024, `${count} × ${size}`);
});

test.run();
