// Runs the chart's ValidatingAdmissionPolicy offline, the way the API server
// evaluates it, against a corpus of requests with the outcome each must get.
//   - the binding's namespaceSelector (kubernetes.io/metadata.name NotIn ...),
//   - every matchCondition (all true: the policy applies),
//   - the variables, lazily and once each, as the API server evaluates them
//     (a variable may refer only to those declared before it), then every
//     validation; a false one is a failure with its messageExpression (or
//     message),
//   - an evaluation error is a failure too when failurePolicy is Fail (and is
//     ignored with Ignore),
//   - failures are enforced by the binding's validationActions: with Deny the
//     request is rejected; with only Warn and/or Audit it is admitted (the
//     failures become warnings or audit annotations).
// `object` is the new object and `oldObject` the stored one, as the API server
// passes them: null on CREATE, the stored pod on UPDATE. For the status and
// ephemeralcontainers subresources the object is what the API server's update
// strategy leaves of the request before admission sees it (status: the spec is
// the stored one; ephemeralcontainers: only spec.ephemeralContainers changes).
// CEL runs in @bufbuild/cel. Values are typed as Kubernetes types them: JSON
// objects are CEL maps, integers CEL ints (int64 fields), strings, bools.
// The policy may call only functions and macros both that evaluator and
// Kubernetes implement (ALLOWED below); anything else is reported, so the
// offline result cannot silently differ from the cluster's.
//
// Usage: node admission.mjs RENDERED.yaml CASES.yaml [--partial]
// Each case: {name, namespace, operation: CREATE (default) | UPDATE,
//             subResource: status | ephemeralcontainers | binding (optional),
//             pod:     CREATE: the pod; UPDATE: the stored pod (oldObject),
//             patch:   UPDATE only: a JSON merge patch (RFC 7386, what
//                      `kubectl patch --type merge` sends) that turns pod into
//                      the object of the request,
//             binding: CREATE of pods/binding: the Binding (instead of pod),
//             expect:  "accept" | "not-selected" | {reject: [substring, ...]}}
// where reject lists, in validation order, one substring per validation that
// must fail (and no other may). Exit 0 when every case gets its outcome and
// every validation fails in at least one case (--partial: a corpus that tests
// some validations only); else the problems and exit 1.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import { run, isCelError } from "@bufbuild/cel";

const ALLOWED = new Set(["has", "all", "exists", "filter", "map", "size", "string", "matches"]);

const [renderedFile, casesFile, ...flags] = process.argv.slice(2);
const partial = flags.includes("--partial");
if (flags.some((f) => f !== "--partial")) {
  console.error(`unknown argument: ${flags.join(" ")}`);
  process.exit(2);
}
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

// RFC 7386: objects merge key by key, null deletes, anything else replaces.
function mergePatch(target, patch) {
  if (patch === null || typeof patch !== "object" || Array.isArray(patch)) return structuredClone(patch);
  const out = target !== null && typeof target === "object" && !Array.isArray(target) ? structuredClone(target) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

// Fields of a pod's spec a plain UPDATE may change (the API server refuses the
// rest); container images are left out: the corpus never needs them.
const MUTABLE_SPEC = new Set(["activeDeadlineSeconds", "tolerations", "schedulingGates", "terminationGracePeriodSeconds"]);

// The request of one case: {object, oldObject, request} as the API server
// builds them, or throws naming what the case gets wrong.
function request(c) {
  const operation = c.operation ?? "CREATE";
  const sub = c.subResource;
  if (!["CREATE", "UPDATE"].includes(operation)) throw new Error(`operation ${operation}: the policy matches CREATE and UPDATE only`);
  const withNamespace = (o) => ({ ...o, metadata: { ...(o.metadata ?? {}), namespace: c.namespace } });
  let object, oldObject = null, kind = "Pod";
  if (sub === "binding") {
    if (operation !== "CREATE" || !c.binding || c.pod || c.patch) throw new Error("a pods/binding case is a CREATE with a binding (no pod, no patch)");
    object = withNamespace(c.binding);
    kind = "Binding";
  } else if (operation === "CREATE") {
    if (sub || c.patch || !c.pod) throw new Error("a CREATE case has a pod, no patch and no subResource");
    object = withNamespace(c.pod);
  } else {
    if (!c.pod || !c.patch) throw new Error("an UPDATE case has the stored pod and a patch");
    if (sub !== undefined && !["status", "ephemeralcontainers"].includes(sub)) throw new Error(`subResource ${sub} is not one the policy matches on UPDATE`);
    oldObject = withNamespace(c.pod);
    object = withNamespace(mergePatch(c.pod, c.patch));
    if (sub === "status") object.spec = structuredClone(oldObject.spec);
    if (sub === "ephemeralcontainers") {
      const eph = object.spec?.ephemeralContainers;
      object = structuredClone(oldObject);
      if (eph === undefined) delete object.spec.ephemeralContainers;
      else object.spec.ephemeralContainers = eph;
    }
    if (sub === undefined)
      for (const k of new Set([...Object.keys(oldObject.spec ?? {}), ...Object.keys(object.spec ?? {})]))
        if (!MUTABLE_SPEC.has(k) && JSON.stringify(oldObject.spec?.[k]) !== JSON.stringify(object.spec?.[k]))
          throw new Error(`the patch changes spec.${k}, which the API server refuses on a pod UPDATE`);
  }
  return {
    object,
    oldObject,
    request: {
      namespace: c.namespace,
      name: object.metadata.name ?? "pod",
      operation,
      kind: { group: "", version: "v1", kind },
      resource: { group: "", version: "v1", resource: "pods" },
      ...(sub ? { subResource: sub } : {}),
    },
  };
}

// The policy's variables as the API server evaluates them: on first use, once,
// each seeing only the variables declared before it.
class Variables extends Map {
  constructor(bindings) {
    super();
    this.bindings = bindings;
    this.declared = (policy.spec.variables ?? []).map((v) => v.name);
    this.visible = this.declared.length;
  }
  get(name) {
    if (super.has(name)) return super.get(name);
    const i = this.declared.indexOf(name);
    if (i < 0 || i >= this.visible) throw new Error(`variables.${name} is not declared before its use`);
    const outer = this.visible;
    this.visible = i;
    try {
      const value = evaluate(policy.spec.variables[i].expression, this.bindings, `variables.${name}`);
      super.set(name, value);
      return value;
    } finally {
      this.visible = outer;
    }
  }
  has(name) {
    return this.declared.includes(name);
  }
}

const actions = binding.spec.validationActions ?? [];
if (!actions.length || actions.some((a) => !["Deny", "Warn", "Audit"].includes(a)))
  problems.push(`binding: validationActions ${JSON.stringify(actions)} is not a non-empty set of Deny, Warn, Audit`);

// matchConstraints.resourceRules: whether some rule names the request's
// operation, API group, version and resource (with its subresource).
const constraints = policy.spec.matchConstraints ?? {};
for (const k of Object.keys(constraints))
  if (!["resourceRules", "matchPolicy"].includes(k)) problems.push(`matchConstraints.${k}: not evaluated by admission.mjs`);
function ruleMatches(req) {
  const resource = req.subResource ? `pods/${req.subResource}` : "pods";
  const any = (list, v) => (list ?? []).includes("*") || (list ?? []).includes(v);
  return (constraints.resourceRules ?? []).some((r) => {
    if (r.resourceNames?.length || r.scope) throw new Error("resourceRules: resourceNames and scope are not evaluated by admission.mjs");
    const resourceOk = (r.resources ?? []).some(
      (x) => x === "*" || x === resource || (x === "pods/*" && req.subResource) || (x === `*/${req.subResource}` && req.subResource),
    );
    return any(r.operations, req.operation) && any(r.apiGroups, "") && any(r.apiVersions, "v1") && resourceOk;
  });
}

// The outcome for one case: {outcome: "accept" | "not-selected" | "reject" |
// "admitted despite failures", messages}.
function admit(c) {
  const r = request(c);
  if (!ruleMatches(r.request)) return { outcome: "not-selected" };
  if (excludedBy(binding.spec.matchResources?.namespaceSelector, c.namespace)) return { outcome: "not-selected" };
  const bindings = { object: cel(r.object), oldObject: r.oldObject === null ? null : cel(r.oldObject), request: cel(r.request) };
  const failures = [];
  // An evaluation error: with Fail a failure (enforced by validationActions), with Ignore none.
  const failOn = (e) => {
    if (policy.spec.failurePolicy !== "Ignore") failures.push(`error: ${e.message}`);
  };
  // Any condition false: skipped. Else any error: a failure (failurePolicy). Else all true: applies.
  const conditions = (policy.spec.matchConditions ?? []).map((m) => {
    try {
      return evaluate(m.expression, bindings, `matchConditions ${m.name}`) === true;
    } catch (e) {
      return e;
    }
  });
  if (conditions.includes(false)) return { outcome: "not-selected" };
  const errors = conditions.filter((x) => x instanceof Error);
  errors.forEach(failOn);
  if (errors.length && !failures.length) return { outcome: "not-selected" };
  if (!errors.length) {
    bindings.variables = new Variables(bindings);
    policy.spec.validations.forEach((v, i) => {
      let ok;
      try {
        ok = evaluate(v.expression, bindings, `validations[${i}]`);
        if (ok !== true && ok !== false) throw new Error(`validations[${i}]: not a bool: ${ok}`);
      } catch (e) {
        // The corpus is meant to hold no request the policy cannot evaluate.
        problems.push(`${c.name}: ${e.message}`);
        return failOn(e);
      }
      if (ok) return;
      failures.push(v.messageExpression ? evaluate(v.messageExpression, bindings, `validations[${i}].messageExpression`) : v.message);
      failed.add(i);
    });
  }
  if (!failures.length) return { outcome: "accept" };
  if (actions.includes("Deny")) return { outcome: "reject", messages: failures };
  return { outcome: `admitted despite failures (validationActions ${JSON.stringify(actions)})`, messages: failures };
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
  if (!partial && !failed.has(i)) problems.push(`validations[${i}] (${v.message}) is never failed by any case: the corpus does not test it`);
});
if (problems.length) {
  console.error(problems.join("\n"));
  process.exit(1);
}
console.log(
  `${cases.length} cases: ${tally.accept} accepted, ${tally.reject} rejected, ${tally["not-selected"]} not selected` +
    (partial ? "" : "; every validation failed at least once"),
);
