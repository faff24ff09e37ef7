// Checks rendered manifests (helm template output) against the Kubernetes API
// schemas, offline: kubernetes-models' validators (required fields, types,
// enums, formats) plus a strict walk that rejects any field the API type does
// not have (what the API server's strict field validation does), using the
// field lists of @kubernetes/client-node's models.
// Usage: node validate.mjs FILE.yaml  -> exit 0, or the problems and exit 1.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import * as client from "@kubernetes/client-node";

const problems = [];

// Prometheus Operator's CRDs (the chart's PodMonitor, ServiceMonitor and
// PrometheusRule): their models check types, required fields, enums and
// patterns; @kubernetes/client-node has no field list for them.
const crdModels = { "monitoring.coreos.com": "@kubernetes-models/prometheus-operator" };

function modelsPath(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : [null, apiVersion];
  if (group && crdModels[group]) return `${crdModels[group]}/${group}/${version}/${kind}`;
  return group ? `kubernetes-models/${group}/${version}/${kind}` : `kubernetes-models/${version}/${kind}`;
}

function clientModel(apiVersion, kind) {
  const version = apiVersion.split("/").pop();
  return `${version[0].toUpperCase()}${version.slice(1)}${kind}`;
}

// Walks `value` along the client model `type` ("V1PodSpec", "Array<V1Container>",
// "{ [key: string]: string; }", a primitive) and reports unknown fields.
function walk(value, type, path) {
  if (value === null || value === undefined) return;
  const array = type.match(/^Array<(.+)>$/);
  if (array) {
    if (Array.isArray(value)) value.forEach((v, i) => walk(v, array[1], `${path}[${i}]`));
    return;
  }
  const map = type.match(/^\{ \[key: string\]: (.+); \}$/);
  if (map) {
    for (const [k, v] of Object.entries(value)) walk(v, map[1], `${path}.${k}`);
    return;
  }
  const model = client[type];
  if (!model || !model.attributeTypeMap || typeof value !== "object") return;
  const fields = new Map(model.attributeTypeMap.map((a) => [a.baseName, a.type]));
  for (const [k, v] of Object.entries(value)) {
    if (!fields.has(k)) problems.push(`${path}: unknown field "${k}" (not in ${type})`);
    else walk(v, fields.get(k), `${path}.${k}`);
  }
}

async function check(obj, where) {
  if (!obj || typeof obj !== "object") return problems.push(`${where}: not an object`);
  const { apiVersion, kind } = obj;
  if (!apiVersion || !kind) return problems.push(`${where}: missing apiVersion or kind`);
  const name = `${where} ${kind} ${obj.metadata?.name ?? "?"}`;
  let Model;
  try {
    Model = (await import(modelsPath(apiVersion, kind)))[kind];
  } catch {
    return problems.push(`${name}: unknown API type ${apiVersion} ${kind}`);
  }
  try {
    new Model(obj).validate();
  } catch (e) {
    problems.push(`${name}: ${e.message}`);
  }
  if (crdModels[apiVersion.split("/")[0]]) return;
  const type = clientModel(apiVersion, kind);
  if (!client[type]) return problems.push(`${name}: no field list for ${type}`);
  walk(obj, type, name);
}

const file = process.argv[2];
const docs = parseAllDocuments(readFileSync(file, "utf8"), { uniqueKeys: true });
let count = 0;
for (const [i, doc] of docs.entries()) {
  for (const e of doc.errors) problems.push(`document ${i}: YAML: ${e.message}`);
  const obj = doc.toJS();
  if (obj === null || obj === undefined) continue;
  count++;
  await check(obj, `document ${i}`);
}
if (count === 0) problems.push(`${file}: no Kubernetes objects`);
if (problems.length) {
  console.error(problems.join("\n"));
  process.exit(1);
}
console.log(`${file}: ${count} objects valid`);
