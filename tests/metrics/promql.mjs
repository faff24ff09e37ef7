// promtool inputs made from the chart's dashboard and alerts (bats/metrics.bats,
// bats/ops.bats). Rule and test files are written as JSON, which promtool
// reads as YAML.
//
//   node promql.mjs record DASHBOARD.json
//     Every panel query of the dashboard as a recording rule, Grafana's
//     variables replaced as Grafana replaces them ($__rate_interval -> 5m,
//     $node and $namespace -> .*, their "All"): `promtool check rules` then
//     parses each query.
//
//   node promql.mjs selected DASHBOARD.json RULES.json SCRAPE.prom OUT_DIR
//     OUT_DIR/selected.rules.json: one alert per dashboard query, per
//     variable's selector (with its label) and per series selector of the
//     alert expressions, firing when it selects nothing; OUT_DIR/selected.test.yaml:
//     the series of SCRAPE.prom (a real scrape of the metrics server) as
//     Prometheus would store them (with job="egress-fence" and a node label,
//     what the chart's monitors add, and up 1), every counter growing, and
//     the expectation that none of those alerts fires.
import { readFileSync, writeFileSync } from "node:fs";

const variables = (q) =>
  q.replaceAll("$__rate_interval", "5m").replaceAll("$__interval", "1m").replace(/\$\{?(node|namespace)\}?/g, ".*");

function panelQueries(dashboard) {
  const out = [];
  for (const p of dashboard.panels ?? []) {
    for (const t of p.targets ?? []) if (t.expr) out.push({ what: `panel "${p.title}" ${t.refId}`, expr: variables(t.expr) });
  }
  return out;
}

// label_values(SELECTOR, LABEL): SELECTOR must select series that have LABEL.
function variableSelectors(dashboard) {
  const out = [];
  for (const v of dashboard.templating?.list ?? []) {
    const q = typeof v.query === "string" ? v.query : v.query?.query;
    const m = /^label_values\((.+),\s*([a-zA-Z_]\w*)\)$/.exec(q ?? "");
    if (!m) continue;
    const sel = m[1].trim();
    const withLabel = sel.endsWith("}") ? `${sel.slice(0, -1)}, ${m[2]}!=""}` : `${sel}{${m[2]}!=""}`;
    out.push({ what: `variable ${v.name}`, expr: withLabel });
  }
  return out;
}

// Every `metric{matchers}` of the alert expressions.
function alertSelectors(rules) {
  const out = [];
  for (const g of rules.groups) {
    for (const r of g.rules) {
      for (const m of r.expr.matchAll(/\b(egress_fence_[a-z_]+|up)\{([^}]*)\}/g))
        out.push({ what: `alert ${r.alert ?? r.record}: ${m[0]}`, expr: m[0] });
    }
  }
  return out;
}

// Sample lines of the text format: name, labels as written, value.
function samples(text) {
  const types = new Map();
  const out = [];
  for (const line of text.split("\n")) {
    const t = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (t) types.set(t[1], t[2]);
    if (line === "" || line.startsWith("#")) continue;
    const name = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line)[0];
    let i = name.length;
    let labels = "";
    if (line[i] === "{") {
      let quoted = false;
      let j = i + 1;
      for (; j < line.length; j++) {
        if (quoted && line[j] === "\\") j++;
        else if (line[j] === '"') quoted = !quoted;
        else if (!quoted && line[j] === "}") break;
      }
      labels = line.slice(i + 1, j);
      i = j + 1;
    }
    out.push({ name, labels, value: Number(line.slice(i).trim()), type: types.get(name) });
  }
  return out;
}

const [mode, ...args] = process.argv.slice(2);
if (mode === "record") {
  const dashboard = JSON.parse(readFileSync(args[0], "utf8"));
  const rules = panelQueries(dashboard).map((q, n) => ({ record: `egress_fence_dashboard:query_${n}`, expr: q.expr }));
  console.log(JSON.stringify({ groups: [{ name: "dashboard", rules }] }, null, 2));
} else if (mode === "selected") {
  const [dashFile, rulesFile, scrapeFile, outDir] = args;
  const dashboard = JSON.parse(readFileSync(dashFile, "utf8"));
  const checks = [...panelQueries(dashboard), ...variableSelectors(dashboard), ...alertSelectors(JSON.parse(readFileSync(rulesFile, "utf8")))];
  const rules = checks.map((c) => ({ alert: "SelectsNothing", expr: `absent(${c.expr})`, labels: { what: c.what } }));
  writeFileSync(`${outDir}/selected.rules.json`, JSON.stringify({ groups: [{ name: "selected", rules }] }, null, 2));
  const extra = 'job="egress-fence",node="node-1"';
  const series = [{ series: `up{${extra},instance="10.0.0.1:9739"}`, values: "1+0x40" }];
  for (const s of samples(readFileSync(scrapeFile, "utf8"))) {
    // The exposer's own families (prometheus-cpp's) are not ours to check.
    if (s.name.startsWith("exposer_") || !Number.isFinite(s.value)) continue;
    if (s.type !== "counter" && s.type !== "gauge") continue;
    series.push({
      series: `${s.name}{${s.labels ? s.labels + "," : ""}${extra}}`,
      values: s.type === "counter" ? `${s.value}+1x40` : `${s.value}+0x40`,
    });
  }
  const test = {
    rule_files: ["selected.rules.json"],
    evaluation_interval: "1m",
    tests: [{ interval: "1m", input_series: series, alert_rule_test: [{ eval_time: "30m", alertname: "SelectsNothing", exp_alerts: [] }] }],
  };
  writeFileSync(`${outDir}/selected.test.yaml`, JSON.stringify(test, null, 2));
  console.log(`${checks.length} queries and selectors, ${series.length} series`);
} else {
  console.error("usage: node promql.mjs record DASHBOARD.json | selected DASHBOARD.json RULES.json SCRAPE.prom OUT_DIR");
  process.exit(2);
}
