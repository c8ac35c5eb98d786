// validate.mjs: checks Kubernetes manifests against the Kubernetes schemas, then against
// spikeserve's own rules for them. Exit 0 when every document passes, 1 otherwise (each
// problem printed as "FILE: doc N (Kind name): ...").
//   node tests/deploy/validate.mjs [FILE.yaml | DIR]...   (default: deploy/kubernetes)
//
// 1. YAML: every file parses (the `yaml` package), one or more documents.
// 2. Schema: each document becomes the kubernetes-models class of its apiVersion and kind
//    (an unknown pair is an error) and .validate() runs the JSON schema of the Kubernetes
//    OpenAPI spec: types, enums, required fields.
// 3. Unknown fields: the schemas accept any extra key (a misspelt `replica:` would pass and
//    be ignored by the API server's non-strict clients), so every key is also looked up in
//    the model's TypeScript declarations (the same OpenAPI spec), recursively.
// 4. spikeserve's rules, across the documents: the StatefulSet's replicas equal the peers in
//    the spikeserve-peers ConfigMap, each named spikeserve-K.<serviceName>.<namespace>.svc.
//    cluster.local:8080 in order; serviceName is a headless Service; the pod runs as
//    non-root with seccomp RuntimeDefault, a read-only root filesystem, no privilege
//    escalation, all capabilities dropped, no Service environment variables (a Service named
//    spikeserve would set SPIKESERVE_PORT=tcp://...); it has liveness, readiness and startup probes,
//    resource requests and limits, and a grace period longer than its preStop wait.
import { readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import YAML from "yaml";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const modelsDir = dirname(require.resolve("kubernetes-models/package.json"));
const machineryDir = dirname(require.resolve("@kubernetes-models/apimachinery/package.json"));

let problems = 0;
const problem = (where, msg) => {
  problems++;
  console.log(`${where}: ${msg}`);
};

// ---- the declarations: interface name -> { prop: type text } ----
const ifaces = new Map(); // global name (IIoK8s...) -> props
function walkDts(dir, out) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walkDts(p, out);
    else if (e.name.endsWith(".d.ts")) out.push(p);
  }
  return out;
}
function parseDts(text) {
  const local = new Map();
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const m = /^export interface (\w+)(?: extends ([\w, ]+))? \{/.exec(lines[i]);
    if (!m) continue;
    const props = {};
    if (m[2] && m[2].split(",").some((s) => s.trim() === "TypeMeta"))
      props.apiVersion = props.kind = "string";
    for (i++; i < lines.length && lines[i] !== "}"; i++) {
      const p = /^ {4}"([^"]+)"\??: (.*)$/.exec(lines[i]);
      if (p) props[p[1]] = p[2].replace(/;$/, "").trim();
    }
    local.set(m[1], props);
  }
  for (const m of text.matchAll(/^export type \{([^}]*)\}/gm))
    for (const part of m[1].split(",")) {
      const a = /(\w+) as (\w+)/.exec(part.trim());
      if (a && local.has(a[1])) ifaces.set(a[2], local.get(a[1]));
    }
  return local;
}
for (const f of walkDts(modelsDir, []).concat(walkDts(machineryDir, [])))
  if (!f.includes("node_modules/kubernetes-models/node_modules")) parseDts(readFileSync(f, "utf8"));

function checkKeys(where, obj, props, path) {
  if (obj === null || typeof obj !== "object" || Array.isArray(obj)) return;
  for (const [k, v] of Object.entries(obj)) {
    if (!(k in props)) {
      problem(where, `unknown field ${path}${k}`);
      continue;
    }
    const t = props[k];
    let m;
    if ((m = /^Array<(\w+)>$/.exec(t)) && ifaces.has(m[1])) {
      if (Array.isArray(v))
        v.forEach((x, i) => checkKeys(where, x, ifaces.get(m[1]), `${path}${k}[${i}].`));
    } else if (ifaces.has(t)) checkKeys(where, v, ifaces.get(t), `${path}${k}.`);
  }
}

// ---- schema validation by kind ----
async function modelClass(apiVersion, kind) {
  if (typeof apiVersion !== "string" || typeof kind !== "string") return null;
  if (!/^[a-z0-9.]*\/?v[0-9a-z]+$/.test(apiVersion) || !/^[A-Za-z]+$/.test(kind)) return null;
  const mod = `kubernetes-models/${apiVersion}`;
  try {
    const m = await import(mod);
    if (!m[kind]) return null;
    const dts = join(modelsDir, apiVersion, `${kind}.d.ts`);
    const local = parseDts(readFileSync(dts, "utf8"));
    return { cls: m[kind], props: local.get(`I${kind}`) };
  } catch {
    return null;
  }
}

function files(args) {
  const out = [];
  for (const a of args.length ? args : [join(here, "..", "..", "deploy", "kubernetes")]) {
    if (statSync(a).isDirectory())
      for (const f of readdirSync(a).sort())
        if (f.endsWith(".yaml") || f.endsWith(".yml")) out.push(join(a, f));
    if (statSync(a).isFile()) out.push(a);
  }
  return out;
}

const docs = []; // { where, obj }
for (const file of files(process.argv.slice(2))) {
  const text = readFileSync(file, "utf8");
  const parsed = YAML.parseAllDocuments(text, { uniqueKeys: true, prettyErrors: true });
  let n = 0;
  for (const d of parsed) {
    n++;
    const where0 = `${file}: doc ${n}`;
    if (d.errors.length) {
      for (const e of d.errors) problem(where0, `YAML: ${e.message.split("\n")[0]}`);
      continue;
    }
    const obj = d.toJS();
    if (obj === null || obj === undefined) continue; // an empty document (comments only)
    const where = `${where0} (${obj.kind} ${obj.metadata?.name ?? "?"})`;
    const mc = await modelClass(obj.apiVersion, obj.kind);
    if (!mc) {
      problem(where, `unknown apiVersion/kind ${obj.apiVersion}/${obj.kind}`);
      continue;
    }
    try {
      new mc.cls(obj).validate();
    } catch (e) {
      problem(where, `schema: ${String(e.message).split("\n").slice(0, 4).join(" | ")}`);
    }
    if (mc.props) checkKeys(where, obj, mc.props, "");
    else problem(where, `no declarations for ${obj.kind}`);
    if (!obj.metadata?.name) problem(where, "metadata.name missing");
    docs.push({ where, obj });
  }
  if (n === 0) problem(file, "no YAML documents");
}

// ---- spikeserve's rules ----
const ofKind = (k) => docs.filter((d) => d.obj.kind === k);
for (const { where, obj } of ofKind("StatefulSet")) {
  const ns = obj.metadata.namespace ?? "default";
  const spec = obj.spec ?? {};
  const svc = ofKind("Service").find(
    (d) => d.obj.metadata.name === spec.serviceName && (d.obj.metadata.namespace ?? "default") === ns,
  );
  if (!svc) problem(where, `serviceName ${spec.serviceName}: no such Service in ${ns}`);
  else if (svc.obj.spec?.clusterIP !== "None")
    problem(where, `serviceName ${spec.serviceName} is not headless (clusterIP: None)`);
  const pod = spec.template?.spec ?? {};
  const volumes = new Map((pod.volumes ?? []).map((v) => [v.name, v]));
  const psc = pod.securityContext ?? {};
  if (psc.runAsNonRoot !== true) problem(where, "pod securityContext.runAsNonRoot must be true");
  if (psc.seccompProfile?.type !== "RuntimeDefault")
    problem(where, "pod securityContext.seccompProfile.type must be RuntimeDefault");
  // a Service named spikeserve makes the kubelet inject SPIKESERVE_PORT=tcp://IP:8080 (and
  // SPIKESERVE_SERVICE_HOST, ...) into every pod of the namespace: the server reads
  // SPIKESERVE_PORT as its port option
  if (pod.enableServiceLinks !== false)
    problem(where, "enableServiceLinks must be false (Service env vars collide with SPIKESERVE_*)");
  const claims = new Set((spec.volumeClaimTemplates ?? []).map((c) => c.metadata?.name));
  for (const c of pod.containers ?? []) {
    const cw = `${where} container ${c.name}`;
    const sc = c.securityContext ?? {};
    if (sc.readOnlyRootFilesystem !== true) problem(cw, "readOnlyRootFilesystem must be true");
    if (sc.allowPrivilegeEscalation !== false)
      problem(cw, "allowPrivilegeEscalation must be false");
    if (!(sc.capabilities?.drop ?? []).includes("ALL")) problem(cw, "capabilities.drop must hold ALL");
    for (const p of ["livenessProbe", "readinessProbe", "startupProbe"])
      if (!c[p]) problem(cw, `${p} missing`);
    if (!c.resources?.requests || !c.resources?.limits) problem(cw, "resources.requests and .limits needed");
    const args = c.args ?? [];
    const flag = (f) => (args.indexOf(f) >= 0 ? args[args.indexOf(f) + 1] : undefined);
    const stateDir = flag("--state-dir");
    const stateMount = (c.volumeMounts ?? []).find((m) => m.mountPath === stateDir);
    if (!stateDir || !stateMount || !claims.has(stateMount.name))
      problem(cw, "--state-dir must be a volumeClaimTemplate's mount");
    if (flag("--wal") !== "1") problem(cw, "--wal 1 expected (a pod that dies loses nothing acknowledged)");
    // the peers file: a ConfigMap volume; its names must be the StatefulSet's pods
    const peersPath = flag("--peers");
    const pm = (c.volumeMounts ?? []).find((m) => peersPath && peersPath.startsWith(m.mountPath + "/"));
    const cmName = pm && volumes.get(pm.name)?.configMap?.name;
    const cm = ofKind("ConfigMap").find((d) => d.obj.metadata.name === cmName);
    if (!cm) {
      problem(cw, `--peers ${peersPath}: not in a mounted ConfigMap of these manifests`);
      continue;
    }
    const key = peersPath.slice(pm.mountPath.length + 1);
    const lines = String(cm.obj.data?.[key] ?? "")
      .split("\n")
      .map((l) => l.replace(/#.*/, "").trim())
      .filter((l) => l);
    const replicas = spec.replicas ?? 1;
    if (lines.length !== replicas)
      problem(cw, `${cmName}/${key} lists ${lines.length} peers, the StatefulSet has ${replicas} replicas`);
    lines.forEach((l, i) => {
      const want = `${obj.metadata.name}-${i}.${spec.serviceName}.${ns}.svc.cluster.local:8080`;
      if (l !== want) problem(cw, `${cmName}/${key} line ${i + 1}: ${l}, expected ${want}`);
    });
    const self = flag("--self");
    if (self !== `$(POD_NAME).${spec.serviceName}.$(POD_NAMESPACE).svc.cluster.local:8080`)
      problem(cw, `--self ${self}: not this pod's line of the peers file`);
    const wait = c.lifecycle?.preStop?.exec?.command?.find((x) => /^\d+$/.test(x));
    const grace = pod.terminationGracePeriodSeconds ?? 30;
    if (!c.lifecycle?.preStop) problem(cw, "lifecycle.preStop missing");
    else if (wait && grace <= Number(wait) + 30)
      problem(cw, `terminationGracePeriodSeconds ${grace} leaves under 30 s for the handoff after preStop's ${wait} s`);
    // the server's own bound on the handoff (--handoff-timeout, default 20 s) must end before
    // the kubelet's SIGKILL: preStop's wait, then the handoff, then a few seconds to exit
    const handoff = Number(flag("--handoff-timeout") ?? 20);
    if (!(handoff > 0)) problem(cw, `--handoff-timeout ${flag("--handoff-timeout")}: not a number of seconds`);
    else if (grace < Number(wait ?? 0) + handoff + 5)
      problem(cw, `terminationGracePeriodSeconds ${grace} is shorter than preStop's ${wait ?? 0} s + --handoff-timeout ${handoff} s + 5 s to exit`);
  }
}
if (ofKind("StatefulSet").length === 0) problem("manifests", "no StatefulSet");
for (const k of ["PodDisruptionBudget", "Ingress", "ConfigMap"])
  if (ofKind(k).length === 0) problem("manifests", `no ${k}`);
for (const { where, obj } of ofKind("Ingress"))
  if (!obj.metadata.annotations?.["nginx.ingress.kubernetes.io/upstream-hash-by"])
    problem(where, "no nginx.ingress.kubernetes.io/upstream-hash-by: requests of a session would spread");

console.log(`${docs.length} documents, ${problems} problems`);
process.exit(problems ? 1 : 0);
