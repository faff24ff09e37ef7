// Runs the chart's ValidatingAdmissionPolicy offline, the way the API server
// evaluates it, against a corpus of pods with the outcome each must get.
//   - the binding's namespaceSelector (kubernetes.io/metadata.name NotIn ...),
//   - every matchCondition (all true: the policy applies; an error counts as a
//     rejection, as with failurePolicy: Fail),
//   - the variables in order, then every validation; a false one rejects the
//     pod with its messageExpression (or message).
// CEL runs in @bufbuild/cel. Values are typed as Kubernetes types them: JSON
// objects are CEL maps, integers CEL ints (int64 fields), strings, bools.
// The policy may call only functions and macros both that evaluator and
// Kubernetes implement (ALLOWED below); anything else is reported, so the
// offline result cannot silently differ from the cluster's.
//
// Usage: node admission.mjs RENDERED.yaml CASES.yaml
// Each case: {name, namespace, operation (default CREATE), pod,
//             expect: "accept" | "not-selected" | {reject: [substring, ...]}}
// where reject lists, in validation order, one substring per validation that
// must fail (and no other may). Exit 0 when every case gets its outcome, every
// validation fails in at least one case, and every case is accepted or
// rejected as expected; else the problems and exit 1.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import { run, isCelError } from "@bufbuild/cel";

const ALLOWED = new Set(["has", "all", "exists", "filter", "map", "size", "string", "matches"]);

const [renderedFile, casesFile] = process.argv.slice(2);
const problems = [];

const objects = parseAllDocuments(readFileSync(renderedFile, "utf8"))
  .map((d) => d.toJS())
  .filter(Boolean);
const policy = objects.find((o) => o.kind === "ValidatingAdmissionPolicy");
const binding = objects.find((o) => o.kind === "ValidatingAdmissionPolicyBinding");
if (!policy || !binding) {
  console.error(`${renderedFile}: no ValidatingAdmissionPolicy and binding`);
  process.exit(1);
}
if (binding.spec.policyName !== policy.metadata.name)
  problems.push(`binding names policy ${binding.spec.policyName}, not ${policy.metadata.name}`);

// Every function or macro the policy's CEL calls (string literals removed).
function calls(expr) {
  const bare = expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, "''");
  return [...bare.matchAll(/([A-Za-z_][A-Za-z0-9_]*)\s*\(/g)].map((m) => m[1]);
}
const expressions = [
  ...(policy.spec.matchConditions ?? []).map((m) => [`matchConditions ${m.name}`, m.expression]),
  ...(policy.spec.variables ?? []).map((v) => [`variables.${v.name}`, v.expression]),
  ...policy.spec.validations.flatMap((v, i) => [
    [`validations[${i}]`, v.expression],
    ...(v.messageExpression ? [[`validations[${i}].messageExpression`, v.messageExpression]] : []),
  ]),
];
for (const [where, expr] of expressions)
  for (const name of calls(expr))
    if (!ALLOWED.has(name)) problems.push(`${where}: calls ${name}(), outside the standard CEL this policy limits itself to (ALLOWED in admission.mjs: implemented alike by Kubernetes and @bufbuild/cel)`);

// JSON -> CEL input: objects become maps, integers ints.
function cel(v) {
  if (Array.isArray(v)) return v.map(cel);
  if (v !== null && typeof v === "object") return new Map(Object.entries(v).map(([k, x]) => [k, cel(x)]));
  if (typeof v === "number") {
    if (!Number.isInteger(v)) throw new Error(`non-integer number ${v} in a pod spec`);
    return BigInt(v);
  }
  return v;
}

function evaluate(expr, bindings, where) {
  const out = run(expr, bindings);
  if (isCelError(out)) throw new Error(`${where}: ${out.message}`);
  return out;
}

function excludedBy(selector, namespace) {
  for (const e of selector?.matchExpressions ?? []) {
    if (e.key !== "kubernetes.io/metadata.name") throw new Error(`binding: cannot evaluate selector key ${e.key}`);
    if (e.operator === "NotIn" && e.values.includes(namespace)) return true;
    if (e.operator === "In" && !e.values.includes(namespace)) return true;
  }
  return false;
}

// The outcome for one case: {outcome: "accept" | "not-selected" | "reject", messages}.
function admit(c) {
  if (excludedBy(binding.spec.matchResources?.namespaceSelector, c.namespace)) return { outcome: "not-selected" };
  const pod = structuredClone(c.pod);
  pod.metadata = { ...(pod.metadata ?? {}), namespace: c.namespace };
  const bindings = {
    object: cel(pod),
    oldObject: null,
    request: cel({ namespace: c.namespace, operation: c.operation ?? "CREATE", kind: { group: "", version: "v1", kind: "Pod" } }),
  };
  for (const m of policy.spec.matchConditions ?? []) {
    let matched;
    try {
      matched = evaluate(m.expression, bindings, `matchConditions ${m.name}`);
    } catch (e) {
      if (policy.spec.failurePolicy === "Fail") return { outcome: "reject", messages: [`error: ${e.message}`] };
      return { outcome: "accept" };
    }
    if (matched !== true) return { outcome: "not-selected" };
  }
  const variables = new Map();
  bindings.variables = variables;
  for (const v of policy.spec.variables ?? []) variables.set(v.name, evaluate(v.expression, bindings, `variables.${v.name}`));
  const messages = [];
  policy.spec.validations.forEach((v, i) => {
    const ok = evaluate(v.expression, bindings, `validations[${i}]`);
    if (ok === true) return;
    if (ok !== false) throw new Error(`validations[${i}]: not a bool: ${ok}`);
    messages.push(v.messageExpression ? evaluate(v.messageExpression, bindings, `validations[${i}].messageExpression`) : v.message);
    failed.add(i);
  });
  return messages.length ? { outcome: "reject", messages } : { outcome: "accept" };
}

const failed = new Set();
const cases = parseAllDocuments(readFileSync(casesFile, "utf8"))
  .map((d) => d.toJS())
  .filter(Boolean);
const tally = { accept: 0, "not-selected": 0, reject: 0 };
for (const c of cases) {
  let got;
  try {
    got = admit(c);
  } catch (e) {
    problems.push(`${c.name}: ${e.message}`);
    continue;
  }
  const want = typeof c.expect === "string" ? c.expect : "reject";
  if (got.outcome !== want) {
    problems.push(`${c.name}: ${got.outcome}${got.messages ? ` (${got.messages.join("; ")})` : ""}, expected ${want}`);
    continue;
  }
  tally[want]++;
  if (want !== "reject") continue;
  const expected = c.expect.reject;
  if (got.messages.length !== expected.length || !expected.every((s, i) => got.messages[i].includes(s)))
    problems.push(`${c.name}: rejected with [${got.messages.join(" | ")}], expected [${expected.join(" | ")}]`);
}
policy.spec.validations.forEach((v, i) => {
  if (!failed.has(i)) problems.push(`validations[${i}] (${v.message}) is never failed by any case: the corpus does not test it`);
});
if (problems.length) {
  console.error(problems.join("\n"));
  process.exit(1);
}
console.log(
  `${cases.length} cases: ${tally.accept} accepted, ${tally.reject} rejected, ${tally["not-selected"]} not selected; every validation failed at least once`,
);
