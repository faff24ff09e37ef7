#!/usr/bin/env bats
# The chart's metrics resources (issue 21), as helm renders them: the main
# container serving /metrics and /healthz, a headless Service, the Prometheus
# Operator objects only when asked, the alerts checked and unit-tested with
# promtool (tests/metrics/alerts.test.yaml), the Grafana dashboard. The server
# itself is tested in bats/ops.bats, the chart's pod for real in
# bats/runtime.bats. Needs no root.

load helpers

CHART="$EF_ROOT/install/helm/egress-fence"

setup_file() {
  EF_HELM="$("$EF_ROOT/scripts/helm.sh")"
  export EF_HELM EF_NPM="$EF_ROOT/.deps/npm"
}

setup() {
  MT="$(mktemp -d /tmp/ef-metrics.XXXXXX)"
}

teardown() {
  [ -n "${MT:-}" ] && rm -rf "$MT"
}

# render OUT.json [helm args...]: `helm template` output as a JSON array.
render() {
  local out="$1"
  shift
  "$EF_HELM" template ef "$CHART" --namespace kube-system "$@" >"${out%.json}.yaml"
  node "$EF_NPM/tojson.mjs" "${out%.json}.yaml" >"$out"
}

spec() { jq '.[] | select(.kind == "DaemonSet") | .spec.template.spec' "$1"; }
main_container() { spec "$1" | jq '.containers[0]'; }
object() { jq --arg k "$2" '.[] | select(.kind == $k)' "$1"; }

# rules RENDERED OUT_DIR: the PrometheusRule's spec as a promtool rule file
# (JSON is YAML), OUT_DIR/rules.json.
rules() {
  mkdir -p "$2"
  object "$1" PrometheusRule | jq '.spec' >"$2/rules.json"
  [ -s "$2/rules.json" ] || fail "no PrometheusRule rendered"
}

# --- the DaemonSet -------------------------------------------------------------------

@test "chart: metrics on by default: the main container listens on the node's address and loopback (9739), probes ask /healthz; it alone gets NET_ADMIN, SYS_ADMIN, SETUID, SETGID and /run/netns read-only" {
  render "$MT/c.json"
  local c
  c="$(main_container "$MT/c.json")"
  jq -e '.command | index("--then-pause") < index("--metrics-listen=$(POD_IP)")' <<<"$c"
  jq -e '.command[-5:] == ["--metrics-listen=$(POD_IP)", "--metrics-listen=127.0.0.1", "--metrics-port=9739",
    "--metrics-netns-dir=/run/netns", "--metrics-scan-timeout=5"]' <<<"$c"
  jq -e '.command | index("--follow-log=/var/log/egress-fence/egress-fence.log")' <<<"$c"
  jq -e '.env == [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]' <<<"$c"
  jq -e '.ports == [{"name": "metrics", "containerPort": 9739, "protocol": "TCP"}]' <<<"$c"
  for probe in readinessProbe livenessProbe; do
    jq -e --arg p "$probe" '.[$p].httpGet == {"path": "/healthz", "port": "metrics"} and (.[$p].exec == null)' <<<"$c"
  done
  jq -e '.securityContext | .capabilities.add == ["NET_ADMIN", "SYS_ADMIN", "SETUID", "SETGID"]
    and .capabilities.drop == ["ALL"] and .privileged == false and .allowPrivilegeEscalation == false
    and .readOnlyRootFilesystem == true and .runAsUser == 0' <<<"$c"
  jq -e '.volumeMounts | index({"name": "netns", "mountPath": "/run/netns", "readOnly": true, "mountPropagation": "HostToContainer"})' <<<"$c"
  spec "$MT/c.json" | jq -e '.hostNetwork == true and (.volumes[] | select(.name == "netns") | .hostPath.path == "/run/netns")'
  # The init container installs only: no capability, no netns.
  spec "$MT/c.json" | jq -e '.initContainers | length == 1 and all(.securityContext.capabilities.add == null
    and (.volumeMounts | map(.name) | index("netns") == null))'
  # The API schemas accept what is rendered.
  run -0 node "$EF_NPM/validate.mjs" "$MT/c.yaml"
}

@test "chart: metrics.enabled=false or uninstall=true: no metrics server, no capability for it, exec verify probes, no Service or dashboard" {
  render "$MT/off.json" --set metrics.enabled=false
  local c
  c="$(main_container "$MT/off.json")"
  jq -e '(.command | map(select(startswith("--metrics"))) | length == 0) and .ports == null and .env == null' <<<"$c"
  jq -e '.securityContext.capabilities.add == null' <<<"$c"
  jq -e '.readinessProbe.exec.command[1] == "verify" and .livenessProbe.exec.command[1] == "verify"' <<<"$c"
  spec "$MT/off.json" | jq -e '.volumes | map(.name) | index("netns") == null'
  [ "$(jq '[.[] | select(.kind == "Service" or (.kind == "ConfigMap" and (.metadata.name | endswith("-dashboard"))))] | length' "$MT/off.json")" = 0 ]
  # Asked for anyway: still nothing (the CRDs' objects need the server).
  render "$MT/off2.json" --set metrics.enabled=false --set metrics.podMonitor.enabled=true --set metrics.rules.enabled=true
  [ "$(jq '[.[] | select(.apiVersion == "monitoring.coreos.com/v1")] | length' "$MT/off2.json")" = 0 ]
  # Uninstalling: the containers remove egress-fence and serve nothing.
  render "$MT/un.json" --set uninstall=true --set metrics.podMonitor.enabled=true
  c="$(main_container "$MT/un.json")"
  jq -e '(.command | map(select(startswith("--metrics"))) | length == 0) and .ports == null' <<<"$c"
  jq -e '.securityContext.capabilities.add == ["NET_ADMIN", "SYS_ADMIN"]' <<<"$c"
  [ "$(jq '[.[] | select(.kind == "Service" or .kind == "PodMonitor")] | length' "$MT/un.json")" = 0 ]
}

@test "chart: metrics.listenAddress: that address alone, no POD_IP, the probes ask it there (0.0.0.0: at the pod IP); port and scan timeout from values" {
  render "$MT/a.json" --set metrics.listenAddress=10.1.2.3 --set metrics.port=9911 --set-json metrics.scanTimeoutSeconds=2.5
  local c
  c="$(main_container "$MT/a.json")"
  jq -e '.command[-4:] == ["--metrics-listen=10.1.2.3", "--metrics-port=9911", "--metrics-netns-dir=/run/netns",
    "--metrics-scan-timeout=2.5"] and .env == null and .ports[0].containerPort == 9911' <<<"$c"
  jq -e '.livenessProbe.httpGet == {"path": "/healthz", "port": "metrics", "host": "10.1.2.3"}' <<<"$c"
  render "$MT/all.json" --set metrics.listenAddress=0.0.0.0
  main_container "$MT/all.json" | jq -e '.livenessProbe.httpGet.host == null and (.command | index("--metrics-listen=0.0.0.0"))'
  # The schema refuses what the server would refuse.
  run "$EF_HELM" template ef "$CHART" --set metrics.listenAddress=::1
  assert_failure
  run "$EF_HELM" template ef "$CHART" --set metrics.listenAddress=node-1
  assert_failure
  run "$EF_HELM" template ef "$CHART" --set metrics.port=80
  assert_failure
}

# --- Service, PodMonitor, ServiceMonitor -------------------------------------------

@test "chart: a headless Service for the DaemonSet's pods; PodMonitor and ServiceMonitor only when asked, job egress-fence, honorLabels, the node label; the CRD models accept them" {
  render "$MT/d.json"
  [ "$(jq '[.[] | select(.apiVersion == "monitoring.coreos.com/v1")] | length' "$MT/d.json")" = 0 ]
  local selector
  selector="$(jq -c '.[] | select(.kind == "DaemonSet") | .spec.selector.matchLabels' "$MT/d.json")"
  object "$MT/d.json" Service | jq -e --argjson s "$selector" '.spec.clusterIP == "None" and .spec.selector == $s
    and .spec.ports == [{"name": "metrics", "port": 9739, "targetPort": "metrics", "protocol": "TCP"}]
    and .metadata.labels["app.kubernetes.io/component"] == "metrics"'

  render "$MT/m.json" --set metrics.podMonitor.enabled=true --set metrics.serviceMonitor.enabled=true \
    --set metrics.podMonitor.labels.release=kps --set metrics.serviceMonitor.interval=1m
  local node='[{"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node", "action": "replace"}]'
  object "$MT/m.json" PodMonitor | jq -e --argjson s "$selector" --argjson node "$node" '.apiVersion == "monitoring.coreos.com/v1"
    and .metadata.namespace == "kube-system" and .metadata.labels.release == "kps"
    and .spec.jobLabel == "app.kubernetes.io/name" and .spec.selector.matchLabels == $s
    and .spec.namespaceSelector.matchNames == ["kube-system"]
    and .spec.podMetricsEndpoints == [{"port": "metrics", "path": "/metrics", "interval": "30s", "scrapeTimeout": "10s",
      "honorLabels": true, "relabelings": $node}]'
  # The pods' label that becomes the job: egress-fence, what the alerts and the dashboard select.
  jq -e '.[] | select(.kind == "DaemonSet") | .spec.template.metadata.labels["app.kubernetes.io/name"] == "egress-fence"' "$MT/m.json"
  local service
  service="$(object "$MT/m.json" Service | jq -c '.metadata.labels')"
  object "$MT/m.json" ServiceMonitor | jq -e --argjson l "$service" --argjson node "$node" '
    .spec.jobLabel == "app.kubernetes.io/name" and $l[.spec.jobLabel] == "egress-fence"
    and (.spec.selector.matchLabels | to_entries | all($l[.key] == .value))
    and .spec.endpoints == [{"port": "metrics", "path": "/metrics", "interval": "1m", "scrapeTimeout": "10s",
      "honorLabels": true, "relabelings": $node}]'
  run -0 node "$EF_NPM/validate.mjs" "$MT/m.yaml"
  # The models do check these objects: a port number where a port name belongs is refused.
  sed 's/^    - port: metrics$/    - port: 9739/' "$MT/m.yaml" >"$MT/bad.yaml"
  ! cmp -s "$MT/m.yaml" "$MT/bad.yaml" || fail "the mutant changed nothing"
  run node "$EF_NPM/validate.mjs" "$MT/bad.yaml"
  assert_failure
  assert_output --partial "port must be string"
}

# --- alerts ---------------------------------------------------------------------------

@test "alerts: promtool check rules passes on the rendered PrometheusRule; promtool test rules: each alert fires on its series and on no other" {
  render "$MT/r.json" --set metrics.rules.enabled=true --set metrics.rules.labels.release=kps
  object "$MT/r.json" PrometheusRule | jq -e '.metadata.labels.release == "kps"'
  run -0 node "$EF_NPM/validate.mjs" "$MT/r.yaml"
  rules "$MT/r.json" "$MT/t"
  cp "$EF_ROOT/tests/metrics/alerts.test.yaml" "$MT/t/"
  run -0 promtool check rules "$MT/t/rules.json"
  assert_output --partial "SUCCESS: 7 rules found"
  run -0 promtool test rules "$MT/t/alerts.test.yaml"
  assert_output --partial SUCCESS
  # Every alert of the chart has a unit test that fires it.
  local alert
  for alert in $(jq -r '.groups[].rules[].alert' "$MT/t/rules.json"); do
    grep -qE "^ +alertname: $alert$" "$MT/t/alerts.test.yaml" || fail "no test of $alert"
    grep -A1 -E "^ +alertname: $alert$" "$MT/t/alerts.test.yaml" | grep -q 'exp_alerts:$' || fail "no test fires $alert"
  done
  # Weakened or broken alerts fail the tests: each edit of the rendered rules must turn them red.
  # shellcheck disable=SC2016 # the $labels of the last one are the alert template's, for sed to write
  local -a mutants=(
    's/code!=\\"104\\"/code=~\\".+\\"/'
    's/"for": "2m"/"for": "20m"/'
    's/verdict=\\"denied\\"/verdict=~\\"denied|audit\\"/'
    's/sum by (namespace, pod) (rate/sum by (namespace, pod, counter) (rate/'
    's/\[5m\])) > 1/[5m])) > 2/'
    's/egress_fence_matches_config{job=\\"egress-fence\\"} == 0/egress_fence_matches_config{job=\\"egress-fence\\"} < 1 unless egress_fence_matches_config offset 10m == 1/'
    's/up{job=\\"egress-fence\\"} == 0/up == 0/'
    's/egress_fence_unreadable_netns{job=\\"egress-fence\\"} > 0/egress_fence_unreadable_netns{job=\\"egress-fence\\"} > 2/'
    's/"severity": "critical"/"severity": "warning"/'
    's/{{ \$labels.node }}: egress-fence/{{ $labels.instance }}: egress-fence/'
  )
  local m
  cp "$MT/t/rules.json" "$MT/t/rules.good"
  for m in "${mutants[@]}"; do
    sed -e "$m" "$MT/t/rules.good" >"$MT/t/rules.json"
    ! cmp -s "$MT/t/rules.good" "$MT/t/rules.json" || fail "sed '$m' changed nothing"
    run promtool test rules "$MT/t/alerts.test.yaml"
    [ "$status" -ne 0 ] || fail "the alert tests pass with: $m"
  done
}

@test "alerts: each has a severity, a summary, a description naming its runbook, whose section is in docs/operating.md; runbook_url when runbookBaseUrl is set" {
  render "$MT/r.json" --set metrics.rules.enabled=true
  rules "$MT/r.json" "$MT/t"
  local alert
  local section
  section="$(sed -n '/^## Alerts and their runbooks$/,/^## /p' "$EF_ROOT/docs/operating.md")"
  [ -n "$section" ] || fail "no section \"Alerts and their runbooks\" in docs/operating.md"
  for alert in $(jq -r '.groups[].rules[].alert' "$MT/t/rules.json"); do
    jq -e --arg a "$alert" '.groups[].rules[] | select(.alert == $a) |
      (.labels.severity | IN("critical", "warning")) and (.annotations.summary | length > 20)
      and (.annotations.description | endswith("Runbook: egress-fence docs/operating.md, \"Alerts and their runbooks\", " + $a + "."))
      and .annotations.runbook_url == null' "$MT/t/rules.json"
    grep -qx "### $alert" <<<"$section" || fail "docs/operating.md has no runbook section for $alert"
  done
  render "$MT/u.json" --set metrics.rules.enabled=true --set metrics.rules.runbookBaseUrl=https://docs.example/egress-fence/docs/operating.md
  rules "$MT/u.json" "$MT/u"
  jq -e '[.groups[].rules[] | .annotations.runbook_url == "https://docs.example/egress-fence/docs/operating.md#" + (.alert | ascii_downcase)] | all' "$MT/u/rules.json"
  # The threshold comes from values.
  render "$MT/v.json" --set metrics.rules.enabled=true --set metrics.rules.denialsPerSecond=20
  rules "$MT/v.json" "$MT/v"
  jq -e '.groups[].rules[] | select(.alert == "EgressFencePodDenialsSpike") | .expr | endswith("[5m])) > 20")' "$MT/v/rules.json"
}

# --- dashboard --------------------------------------------------------------------------

@test "dashboard: a ConfigMap with the grafana_dashboard label holding files/dashboard.json; every panel query parses (promtool) and selects job egress-fence" {
  render "$MT/d.json" --set metrics.dashboard.namespace=monitoring
  local cm
  cm="$(jq '.[] | select(.kind == "ConfigMap" and .metadata.name == "ef-dashboard")' "$MT/d.json")"
  jq -e '.metadata.labels.grafana_dashboard == "1" and .metadata.namespace == "monitoring"' <<<"$cm"
  jq -r '.data["egress-fence.json"]' <<<"$cm" >"$MT/dashboard.json"
  diff <(jq -S . "$MT/dashboard.json") <(jq -S . "$CHART/files/dashboard.json")
  jq -e '.uid == "egress-fence" and (.templating.list | map(.name) == ["datasource", "node", "namespace"])' "$MT/dashboard.json"
  # The panels the issue asks for, by title.
  local title
  for title in "Fenced pods per node" "Denied packets by class" "Denied packets by pod (top 10)" "ADD outcomes" \
    "Pods whose fence differs from the config"; do
    jq -e --arg t "$title" '[.panels[].title] | index($t)' "$MT/dashboard.json" >/dev/null || fail "no panel \"$title\""
  done
  # Every query as a recording rule: promtool parses each (Grafana's variables replaced as Grafana would).
  node "$EF_ROOT/tests/metrics/promql.mjs" record "$MT/dashboard.json" >"$MT/dash.rules.yaml"
  [ "$(jq '.groups[0].rules | length' "$MT/dash.rules.yaml")" -ge 15 ]
  run -0 promtool check rules "$MT/dash.rules.yaml"
  jq -r '.panels[].targets[]?.expr' "$MT/dashboard.json" | while IFS= read -r q; do
    [[ "$q" == *'job="egress-fence"'* ]] || fail "a query without job=\"egress-fence\": $q"
  done
  # A query that does not parse is caught.
  jq '.panels[1].targets[0].expr |= sub("\\)$"; "")' "$MT/dashboard.json" >"$MT/broken.json"
  node "$EF_ROOT/tests/metrics/promql.mjs" record "$MT/broken.json" >"$MT/broken.rules.yaml"
  run promtool check rules "$MT/broken.rules.yaml"
  assert_failure
}
