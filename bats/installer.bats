#!/usr/bin/env bats
# The installer and the Helm chart (issue 5), run as root:
#   - the chart lints, renders with every preset, passes the Kubernetes API
#     schemas offline, and asks for no RBAC and no privileged container;
#   - the DaemonSet's containers are run the way kubelet would run them: their
#     command and volume mounts taken from `helm template`, the bundle as the
#     image's root (read-only), hostPath volumes from a temporary host root,
#     every capability dropped but CAP_SYS_CHROOT (needed to enter the root);
#   - over a corpus of real-world primary configs and distractors, through
#     primary rewrites, Cilium's exclusive-mode rename, uninstall, a broken
#     plugin config, and a binary upgrade while pods are being created.

load helpers

CHART="$EF_ROOT/install/helm/egress-fence"
CORPUS="$EF_ROOT/tests/corpus"

setup_file() {
  EF_HELM="$("$EF_ROOT/scripts/helm.sh")"
  export EF_HELM
  export EF_NPM="$EF_ROOT/.deps/npm"
  export EF_BUNDLE="$BATS_FILE_TMPDIR/bundle"
  "$EF_ROOT/scripts/bundle.sh" "$EF_BIN" "$EF_BUNDLE" >/dev/null
}

setup() {
  IT="$(mktemp -d /tmp/ef-installer.XXXXXX)"
  HOST="$IT/host"
  mkdir -p "$HOST"
}

teardown() {
  if [ -n "${EF_TMP:-}" ]; then ef_teardown; fi
  if [ -n "${IT:-}" ]; then rm -rf "$IT"; fi
}

# --- rendering -------------------------------------------------------------------

# render OUT.json [helm args...]: `helm template` output as a JSON array of objects.
# With metrics.enabled=false unless the args say otherwise: these tests run the
# installer's containers as kubelet would (command, mounts, no capability); the
# metrics server the chart adds by default (its capabilities, the POD_IP it
# listens on, the /healthz probes) is tested in bats/metrics.bats and
# bats/ops.bats, and runs for real in bats/runtime.bats.
render() {
  local out="$1"
  shift
  "$EF_HELM" template ef "$CHART" --namespace kube-system --set metrics.enabled=false "$@" >"${out%.json}.yaml"
  node "$EF_NPM/tojson.mjs" "${out%.json}.yaml" >"$out"
}

# The pod spec of the rendered DaemonSet.
pod_spec() { jq '.[] | select(.kind == "DaemonSet") | .spec.template.spec' "$1"; }

# hostpath RENDERED VOLUME: the host path of a hostPath volume.
hostpath() { pod_spec "$1" | jq -r --arg v "$2" '.volumes[] | select(.name == $v) | .hostPath.path'; }

# --- running the DaemonSet's containers -------------------------------------------

# run_container RENDERED init|main|liveness|readiness: runs that container's
# command (or probe command) as kubelet would, against $HOST.
run_container() {
  local rendered="$1" which="$2"
  local spec container cmd
  spec="$(pod_spec "$rendered")"
  case "$which" in
    init) container="$(jq '.initContainers[0]' <<<"$spec")"; cmd='.command' ;;
    main) container="$(jq '.containers[0]' <<<"$spec")"; cmd='.command' ;;
    liveness) container="$(jq '.containers[0]' <<<"$spec")"; cmd='.livenessProbe.exec.command' ;;
    readiness) container="$(jq '.containers[0]' <<<"$spec")"; cmd='.readinessProbe.exec.command' ;;
  esac
  local image="$IT/image" configmap="$IT/configmap" script="$IT/run-$which.sh"
  if [ ! -d "$image" ]; then
    mkdir -p "$image/opt/egress-fence/bin" "$image/proc"
    cp -a "$EF_BUNDLE/." "$image/opt/egress-fence/bin/"
  fi
  rm -rf "$configmap"
  mkdir -p "$configmap"
  jq -r '.[] | select(.kind == "ConfigMap") | .data["config.json"]' "$rendered" >"$configmap/config.json"

  {
    echo 'set -e'
    # readOnlyRootFilesystem: true
    echo "mount --bind '$image' '$image'"
    echo "mount -o remount,bind,ro '$image'"
    echo "mount -t proc proc '$image/proc'"
    local name path ro src
    while IFS=$'\t' read -r name path ro; do
      mkdir -p "$image$path"
      src="$(jq -r --arg v "$name" '.volumes[] | select(.name == $v) | .hostPath.path // empty' <<<"$spec")"
      if [ -n "$src" ]; then
        src="$HOST$src"
        mkdir -p "$src" # type: DirectoryOrCreate
      else
        src="$configmap"
      fi
      # rbind: a hostPath volume carries the mounts below it (pod netns files).
      echo "mount --rbind '$src' '$image$path'"
      if [ "$ro" = true ]; then echo "mount -o remount,bind,ro '$image$path'"; fi
    done < <(jq -r '.volumeMounts[] | [.name, .mountPath, (.readOnly // false)] | @tsv' <<<"$container")
    # This shell's pid becomes the container's process through the execs below.
    if [ -n "${RUN_PIDFILE:-}" ]; then echo "echo \$\$ >'$RUN_PIDFILE'"; fi
    # runAsUser 0, capabilities drop ALL (but those the spec adds), allowPrivilegeEscalation false.
    local caps
    caps="$(jq -r '.securityContext.capabilities.add // [] | map(",+" + ascii_downcase) | join("")' <<<"$container")"
    printf 'exec setpriv --no-new-privs --bounding-set=-all,+sys_chroot%s --inh-caps=-all chroot %q' "$caps" "$image"
    jq -r "$cmd | map(@sh) | join(\" \")" <<<"$container" | sed 's/^/ /'
  } >"$script"
  env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin unshare --mount --propagation private bash "$script"
}

# snapshot DIR: every path with its type, mode, link target and content hash.
snapshot() {
  (cd "$1" && find . -printf '%p %y %m %l\n' | sort && find . -type f -exec sha256sum {} + | sort)
}

# fake_plugins DIR TYPE...: stand-in executables for a primary's plugins (the
# bin dir must hold the chain's plugins, or install refuses it).
fake_plugins() {
  local dir="$1" t
  shift
  mkdir -p "$dir"
  for t in "$@"; do
    printf '#!/bin/sh\nexit 1\n' >"$dir/$t"
    chmod 0755 "$dir/$t"
  done
}

# The plugin types of a corpus primary's chain, one a line.
primary_types() { jq -r '(.plugins // [.])[] | .type' "$CORPUS/primaries/$1"; }

# A host root with one primary from the corpus and the distractors in CONF_DIR,
# and the primary's plugins (stand-ins) in BIN_DIR. host_with PRIMARY RENDERED
host_with() {
  local primary="$1" rendered="$2"
  CONF_DIR="$HOST$(hostpath "$rendered" cni-conf)"
  BIN_DIR="$HOST$(hostpath "$rendered" cni-bin)"
  mkdir -p "$CONF_DIR" "$BIN_DIR"
  cp "$CORPUS/primaries/$primary" "$CORPUS/distractors/"* "$CONF_DIR/"
  mapfile -t types < <(primary_types "$primary")
  fake_plugins "$BIN_DIR" portmap "${types[@]}"
  # The other hostPath dirs kubelet creates for the pod (DirectoryOrCreate):
  # the plugin's log dir, and /run/netns for the uninstall scan.
  mkdir -p "$HOST/var/log/egress-fence" "$HOST/run/netns"
  chmod 0640 "$CONF_DIR/$primary"
}

# The conflist the primary file amounts to (a .conf wrapped), for comparison.
as_list() {
  case "$1" in
    *.conflist) jq -S '{name, cniVersion, plugins}' "$1" ;;
    *) jq -S '{name: (.name // ""), cniVersion: (.cniVersion // ""), plugins: [.]}' "$1" ;;
  esac
}

# The scenario of the issue for one primary: install with the init container,
# check the owned conflist, verify, install again (no change), uninstall
# (exact restore). check_owned PRIMARY [helm args...]
check_owned() {
  local primary="$1"
  shift
  render "$IT/chart.json" "$@"
  render "$IT/uninstall.json" "$@" --set uninstall=true
  host_with "$primary" "$IT/chart.json"
  snapshot "$HOST" >"$IT/before"

  run run_container "$IT/chart.json" init
  assert_success

  local owned="$CONF_DIR/00-egress-fence.conflist"
  [ -f "$owned" ]
  # The copy is the primary's chain (same name and cniVersion) plus our entry, last.
  diff <(as_list "$CONF_DIR/$primary") <(jq -S '{name, cniVersion, plugins: .plugins[:-1]}' "$owned")
  diff <(jq -S 'del(.name, .cniVersion)' "$IT/configmap/config.json") <(jq -S '.plugins[-1]' "$owned")
  [ "$(jq -r '."egress-fence.io/source".file' "$owned")" = "$primary" ]
  # The mode of the primary file is kept for the copy; nothing else changed.
  [ "$(stat -c %a "$owned")" = "$(stat -c %a "$CONF_DIR/$primary")" ]
  diff <(grep -v 00-egress-fence.conflist "$IT/before") <(snapshot "$HOST" | grep -v -e 00-egress-fence.conflist -e "${BIN_DIR#"$HOST"}/egress-fence")

  run run_container "$IT/chart.json" liveness
  assert_success
  assert_output --partial "fenced: 00-egress-fence.conflist"

  # Idempotent: a second install (the main container's start) writes nothing.
  local inode
  inode="$(stat -c %i "$owned")"
  snapshot "$HOST" >"$IT/installed"
  run run_container "$IT/chart.json" init
  assert_success
  diff "$IT/installed" <(snapshot "$HOST")
  [ "$(stat -c %i "$owned")" = "$inode" ]

  run run_container "$IT/uninstall.json" init
  assert_success
  diff "$IT/before" <(snapshot "$HOST")
}

# --- the chart --------------------------------------------------------------------

@test "chart: helm lint --strict passes with defaults, every preset and uninstall mode" {
  local args
  for args in "" "--set platform=k3s" "--set platform=microk8s" "--set platform=openshift" \
    "--set platform=gke" "--set uninstall=true" "--set cni.mode=chained"; do
    # shellcheck disable=SC2086
    run "$EF_HELM" lint --strict "$CHART" $args
    assert_success
    assert_output --partial "0 chart(s) failed"
  done
}

@test "chart: rendered manifests pass the Kubernetes API schemas (defaults and every preset)" {
  local p
  for p in generic k3s microk8s openshift gke; do
    render "$IT/$p.json" --set platform="$p"
    run node "$EF_NPM/validate.mjs" "$IT/$p.yaml"
    assert_success
  done
  render "$IT/uninstall.json" --set uninstall=true
  run node "$EF_NPM/validate.mjs" "$IT/uninstall.yaml"
  assert_success
  # The GKE preset outside kube-system adds the ResourceQuota GKE demands for system-node-critical.
  "$EF_HELM" template ef "$CHART" --namespace egress-fence --set platform=gke >"$IT/gke-ns.yaml"
  run node "$EF_NPM/validate.mjs" "$IT/gke-ns.yaml"
  assert_success
  grep -q '^kind: ResourceQuota' "$IT/gke-ns.yaml"
}

@test "chart: the schema check rejects an unknown field and a wrong type" {
  render "$IT/chart.json"
  sed -e 's/readOnlyRootFilesystem/readOnlyRootFileSystem/' "$IT/chart.yaml" >"$IT/typo.yaml"
  run node "$EF_NPM/validate.mjs" "$IT/typo.yaml"
  assert_failure
  assert_output --partial 'unknown field "readOnlyRootFileSystem"'
  sed -e 's/periodSeconds: 10/periodSeconds: "10"/' "$IT/chart.yaml" >"$IT/type.yaml"
  run node "$EF_NPM/validate.mjs" "$IT/type.yaml"
  assert_failure
  assert_output --partial 'must be integer'
}

@test "chart: hostNetwork with dnsPolicy Default; no RBAC, no token, no privileged container, all capabilities dropped, read-only root" {
  local p
  for p in generic k3s microk8s openshift gke; do
    render "$IT/$p.json" --set platform="$p"
    run jq -r '.[].kind' "$IT/$p.json"
    refute_output --regexp 'Role|ServiceAccount|PodSecurityPolicy|SecurityContextConstraints'
    pod_spec "$IT/$p.json" >"$IT/spec.json"
    jq -e '.automountServiceAccountToken == false' "$IT/spec.json"
    jq -e '.priorityClassName == "system-node-critical"' "$IT/spec.json"
    jq -e '.tolerations == [{"operator": "Exists"}]' "$IT/spec.json"
    jq -e '[.initContainers[], .containers[]] | length == 2' "$IT/spec.json"
    jq -e '[.initContainers[], .containers[]] | all(.securityContext |
      .privileged == false and .allowPrivilegeEscalation == false and .readOnlyRootFilesystem == true
      and .capabilities.drop == ["ALL"] and (.capabilities.add // []) == [] and .runAsUser == 0)' "$IT/spec.json"
    jq -e '[.initContainers[], .containers[]] | all(.resources.limits.memory)' "$IT/spec.json"
    # hostNetwork: the pod that repairs the chain must not need the chain.
    jq -e '.hostNetwork == true and .dnsPolicy == "Default" and .hostPID != true and .hostIPC != true' "$IT/spec.json"
  done
  jq -e '.containers[0].securityContext.seLinuxOptions.type == "spc_t"' <(pod_spec "$IT/openshift.json")
}

@test "chart: logAllNetns adds one init container writing the host sysctl's file, with no privilege" {
  render "$IT/log.json" --set logAllNetns=true
  run node "$EF_NPM/validate.mjs" "$IT/log.yaml"
  assert_success
  run "$EF_HELM" lint --strict "$CHART" --set logAllNetns=true
  assert_success
  pod_spec "$IT/log.json" >"$IT/spec.json"
  jq -e '[.initContainers[].name] == ["log-all-netns", "install"]' "$IT/spec.json"
  jq -e '.initContainers[0].command[1:] == ["log-all-netns", "--file=/host/nf_log_all_netns"]' "$IT/spec.json"
  jq -e '.initContainers[0].volumeMounts == [{"name": "nf-log-all-netns", "mountPath": "/host/nf_log_all_netns"}]' "$IT/spec.json"
  jq -e '.initContainers[0].securityContext |
    .privileged == false and .allowPrivilegeEscalation == false and .readOnlyRootFilesystem == true
    and .capabilities.drop == ["ALL"] and (.capabilities.add // []) == []' "$IT/spec.json"
  jq -e '.volumes[] | select(.name == "nf-log-all-netns") | .hostPath ==
    {"path": "/proc/sys/net/netfilter/nf_log_all_netns", "type": "File"}' "$IT/spec.json"
  jq -e '.hostNetwork == true and .hostPID != true' "$IT/spec.json"
  # Off by default, and never while uninstalling.
  render "$IT/default.json"
  run jq -r '.[] | .. | strings' "$IT/default.json"
  refute_output --partial nf_log_all_netns
  render "$IT/un.json" --set logAllNetns=true --set uninstall=true
  run jq -r '.[] | .. | strings' "$IT/un.json"
  refute_output --partial nf_log_all_netns
  run "$EF_HELM" template ef "$CHART" --set logAllNetns=yes
  assert_failure
  assert_output --partial "- logAllNetns: Invalid type"
}

@test "chart: the main container installs before it pauses, and both probes run verify" {
  render "$IT/chart.json"
  pod_spec "$IT/chart.json" >"$IT/spec.json"
  jq -e '.initContainers[0].command[1] == "install"' "$IT/spec.json"
  jq -e '.containers[0].command[1] == "install" and .containers[0].command[-2:] ==
    ["--then-pause", "--follow-log=/var/log/egress-fence/egress-fence.log"]' "$IT/spec.json"
  # It reads the plugin's log dir, read-only; with no logFile it follows nothing.
  jq -e '.containers[0].volumeMounts | index({"name": "plugin-log", "mountPath": "/var/log/egress-fence", "readOnly": true})' "$IT/spec.json"
  jq -e '.volumes[] | select(.name == "plugin-log") | .hostPath == {"path": "/var/log/egress-fence", "type": "DirectoryOrCreate"}' "$IT/spec.json"
  jq -e '.initContainers[0].volumeMounts | map(.name) | index("plugin-log") == null' "$IT/spec.json"
  render "$IT/nolog.json" --set pluginConfig.logFile=
  jq -e '.containers[0].command[-1] == "--then-pause" and (.volumes | map(.name) | index("plugin-log") == null)' <(pod_spec "$IT/nolog.json")
  jq -e '.containers[0].livenessProbe.exec.command[1] == "verify"' "$IT/spec.json"
  jq -e '.containers[0].readinessProbe.exec.command[1] == "verify"' "$IT/spec.json"
  # The repair time: failureThreshold x periodSeconds within a minute.
  jq -e '.containers[0].livenessProbe | .failureThreshold * .periodSeconds <= 60' "$IT/spec.json"
  render "$IT/uninstall.json" --set uninstall=true
  pod_spec "$IT/uninstall.json" >"$IT/spec.json"
  jq -e '.initContainers[0].command[1] == "uninstall"' "$IT/spec.json"
  # Uninstalling, the main container removes the plugin once no netns holds a
  # fence, and is ready only then.
  jq -e '.containers[0].command[1:] == ["uninstall", "--cni-bin-dir=/host/cni/bin", "--cni-conf-dir=/host/cni/net.d",
    "--netns-dir=/run/netns", "--wait", "--poll-seconds=10", "--then-pause"] and (.containers[0].livenessProbe == null)
    and .containers[0].readinessProbe.exec.command[1] == "uninstall-status"' "$IT/spec.json"
  jq -e '.volumes[] | select(.name == "netns") | .hostPath.path == "/run/netns"' "$IT/spec.json"
}

@test "chart: presets set the host paths; explicit dirs override them" {
  declare -A bin=([generic]=/opt/cni/bin [k3s]=/var/lib/rancher/k3s/data/cni
    [microk8s]=/var/snap/microk8s/current/opt/cni/bin [openshift]=/var/lib/cni/bin [gke]=/home/kubernetes/bin)
  declare -A conf=([generic]=/etc/cni/net.d [k3s]=/var/lib/rancher/k3s/agent/etc/cni/net.d
    [microk8s]=/var/snap/microk8s/current/args/cni-network [openshift]=/etc/kubernetes/cni/net.d [gke]=/etc/cni/net.d)
  local p
  for p in "${!bin[@]}"; do
    render "$IT/$p.json" --set platform="$p"
    [ "$(hostpath "$IT/$p.json" cni-bin)" = "${bin[$p]}" ]
    [ "$(hostpath "$IT/$p.json" cni-conf)" = "${conf[$p]}" ]
  done
  render "$IT/x.json" --set platform=k3s --set cni.binDir=/x/bin --set cni.confDir=/x/net.d
  [ "$(hostpath "$IT/x.json" cni-bin)" = /x/bin ]
  [ "$(hostpath "$IT/x.json" cni-conf)" = /x/net.d ]
}

@test "chart: values.schema.json rejects unknown keys and bad values" {
  run "$EF_HELM" template ef "$CHART" --set platform=eks
  assert_failure
  assert_output --partial "- platform: platform must be one of"
  run "$EF_HELM" template ef "$CHART" --set cni.mdoe=chained
  assert_failure
  assert_output --partial "mdoe"
  run "$EF_HELM" template ef "$CHART" --set pluginConfig.logLevel=loud
  assert_failure
  assert_output --partial "- pluginConfig.logLevel: pluginConfig.logLevel must be one of"
}

@test "chart: a plugin config change changes the checksum annotation (rolls the DaemonSet)" {
  render "$IT/a.json"
  render "$IT/b.json" --set pluginConfig.logLevel=debug
  local a b
  a="$(pod_spec "$IT/a.json" >/dev/null; jq -r '.[] | select(.kind == "DaemonSet") | .spec.template.metadata.annotations["checksum/config"]' "$IT/a.json")"
  b="$(jq -r '.[] | select(.kind == "DaemonSet") | .spec.template.metadata.annotations["checksum/config"]' "$IT/b.json")"
  [ -n "$a" ] && [ "$a" != "$b" ]
}

# --- the optional admission policy ----------------------------------------------------

ADMISSION="$EF_ROOT/tests/chart/admission"

@test "chart: the admission policy renders only when enabled: a ValidatingAdmissionPolicy and its binding, lint and API schema clean" {
  render "$IT/default.json" -f "$ADMISSION/values.yaml" --set admissionPolicy.enabled=false
  run jq -r '.[].kind' "$IT/default.json"
  refute_output --partial ValidatingAdmissionPolicy
  render "$IT/plain.json"
  run jq -r '.[].kind' "$IT/plain.json"
  refute_output --partial ValidatingAdmissionPolicy

  render "$IT/vap.json" -f "$ADMISSION/values.yaml"
  run jq -r '[.[] | select(.kind | startswith("ValidatingAdmissionPolicy")) | "\(.apiVersion) \(.kind)"] | join(",")' "$IT/vap.json"
  assert_output "admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy,admissionregistration.k8s.io/v1 ValidatingAdmissionPolicyBinding"
  run node "$EF_NPM/validate.mjs" "$IT/vap.yaml"
  assert_success
  run "$EF_HELM" lint --strict "$CHART" -f "$ADMISSION/values.yaml"
  assert_success
  assert_output --partial "0 chart(s) failed"
  # The binding never covers the release's own namespace (the DaemonSet is root on the host network).
  jq -e '.[] | select(.kind == "ValidatingAdmissionPolicyBinding") | .spec.matchResources.namespaceSelector.matchExpressions
    == [{key: "kubernetes.io/metadata.name", operator: "NotIn", values: ["kube-system", "legacy-tools"]}]' "$IT/vap.json"
  "$EF_HELM" template ef "$CHART" --namespace egress-fence -f "$ADMISSION/values.yaml" >"$IT/ns.yaml"
  node "$EF_NPM/tojson.mjs" "$IT/ns.yaml" | jq -e '.[] | select(.kind == "ValidatingAdmissionPolicyBinding")
    | .spec.matchResources.namespaceSelector.matchExpressions[0].values == ["egress-fence", "kube-system", "legacy-tools"]'
  # Kubernetes 1.28/1.29: the same objects under v1beta1.
  render "$IT/beta.json" -f "$ADMISSION/values.yaml" --set admissionPolicy.apiVersion=admissionregistration.k8s.io/v1beta1
  jq -e --slurpfile v1 "$IT/vap.json" '[.[] | select(.kind | startswith("ValidatingAdmissionPolicy"))] as $b
    | ($b | map(.apiVersion) | unique) == ["admissionregistration.k8s.io/v1beta1"]
    and ($b | map(del(.apiVersion))) == [$v1[0][] | select(.kind | startswith("ValidatingAdmissionPolicy")) | del(.apiVersion)]' "$IT/beta.json"
  # Denies by default (the corpus test below shows a [Warn] binding admits what it must refuse).
  jq -e '.[] | select(.kind == "ValidatingAdmissionPolicyBinding") | .spec.validationActions == ["Deny"]' "$IT/vap.json" ||
    fail "the binding's validationActions is not [Deny]"
  # Pods on CREATE and UPDATE (plain, status, ephemeral containers), bindings on CREATE.
  jq -e '.[] | select(.kind == "ValidatingAdmissionPolicy") | .spec.matchConstraints.resourceRules
    | map({operations, resources}) == [{operations: ["CREATE"], resources: ["pods", "pods/binding"]},
        {operations: ["UPDATE"], resources: ["pods", "pods/status", "pods/ephemeralcontainers"]}]' "$IT/vap.json" ||
    fail "the policy does not match what can change a pod's annotations"
  # No selectors: the policy selects no pod (a binding only when it sets an annotation the plugin reads).
  render "$IT/none.json" --set admissionPolicy.enabled=true
  jq -e '.[] | select(.kind == "ValidatingAdmissionPolicy") | .spec.matchConditions[0].expression
    | endswith(": (false) || (oldObject != null && (false))")' "$IT/none.json" || fail "a policy without selectors selects some pod"
  run "$EF_HELM" template ef "$CHART" --set admissionPolicy.enabled=yes
  assert_failure
  assert_output --partial "- admissionPolicy.enabled: Invalid type"
  run "$EF_HELM" template ef "$CHART" --set admissionPolicy.enabled=true --set 'admissionPolicy.validationActions={Block}'
  assert_failure
  assert_output --partial "- admissionPolicy.validationActions.0: admissionPolicy.validationActions.0 must be one of"
  run "$EF_HELM" template ef "$CHART" --set admissionPolicy.enabled=true --set 'admissionPolicy.allowedHostPaths={proc}'
  assert_failure
  run "$EF_HELM" template ef "$CHART" --set admissionPolicy.enabled=true --set 'admissionPolicy.allowedRuntimeClasses={Kata}'
  assert_failure
}

@test "chart: the admission policy's CEL gives every request of the corpus its outcome (accepted, rejected with its reasons, not selected)" {
  render "$IT/vap.json" -f "$ADMISSION/values.yaml"
  run node "$EF_NPM/admission.mjs" "$IT/vap.yaml" "$ADMISSION/cases.yaml"
  assert_success
  assert_output --regexp '^[0-9]+ cases: [1-9][0-9]* accepted, [1-9][0-9]* rejected, [1-9][0-9]* not selected; every validation failed at least once$'
  # The allow lists admit exactly what they name.
  render "$IT/allowed.json" -f "$ADMISSION/values.yaml" -f "$ADMISSION/values-allowed.yaml"
  run node "$EF_NPM/admission.mjs" "$IT/allowed.yaml" "$ADMISSION/cases-allowed.yaml" --partial
  assert_success
  assert_output --regexp '^[0-9]+ cases: [1-9][0-9]* accepted, [1-9][0-9]* rejected, 0 not selected$'
  # With the default (empty) lists the same corpus fails: what they name is refused.
  run node "$EF_NPM/admission.mjs" "$IT/vap.yaml" "$ADMISSION/cases-allowed.yaml" --partial
  [ "$status" -eq 1 ] || fail "the default lists admitted what only values-allowed.yaml names"
  assert_output --partial "the allowed host path: reject"
  assert_output --partial "the allowed runtime class: reject"

  # A binding that only warns or audits admits every pod the corpus says it must refuse.
  local actions
  for actions in '{Warn}' '{Warn,Audit}' '{Audit}'; do
    render "$IT/warn.json" -f "$ADMISSION/values.yaml" --set "admissionPolicy.validationActions=$actions"
    run node "$EF_NPM/admission.mjs" "$IT/warn.yaml" "$ADMISSION/cases.yaml"
    [ "$status" -eq 1 ] || fail "the corpus passed with validationActions $actions"
    assert_output --partial "the workload runs as root: admitted despite failures"
  done

  # The check fails when a rule is weakened: each mutation lets some corpus request through.
  local m
  for m in 's/c.securityContext.allowPrivilegeEscalation == false/true/g' \
    "s/'ALL' in c.securityContext.capabilities.drop || //g" \
    's/(CAP_)?(ALL|NET_RAW|NET_ADMIN|SETUID|SETGID)/(NET_RAW|NET_ADMIN|SETUID|SETGID)/g' \
    's/ > 0)/ >= 0)/g' \
    's/"1337", "1338"/"1337"/' \
    's/has(object.spec.ephemeralContainers) ? /false ? /g' \
    's/agents-\.\*/agents-7/' \
    's/operations: \["UPDATE"\]/operations: ["DELETE"]/' \
    's|"pods", "pods/status", "pods/ephemeralcontainers"|"pods", "pods/ephemeralcontainers"|' \
    's|"pods", "pods/binding"|"pods"|' \
    's/(oldObject != null \&\& /(false \&\& /' \
    's/ : oldObject == null ? \[\] : / : true ? [] : /' \
    's/\[object.metadata.annotations\[k\]\]/[true]/; s/\[oldObject.metadata.annotations\[k\]\]/[true]/' \
    's|, "openshell.ai/proxy-uid"\]|]|g' \
    "s/request.operation == 'CREATE' ? (has(request.subResource) ? request.subResource : '') != 'binding'/true ? true/" \
    "s/: (has(request.subResource) ? request.subResource : '') == 'ephemeralcontainers'/: false/" \
    's/has(object.spec.hostNetwork) \&\& object.spec.hostNetwork/false/' \
    's/has(object.spec.hostPID) \&\& object.spec.hostPID/false/' \
    's/has(object.spec.hostIPC) \&\& object.spec.hostIPC/false/' \
    's/has(v.hostPath) \&\& /false \&\& /' \
    's/!has(object.spec.runtimeClassName) || /true || /'; do
    sed -e "$m" "$IT/vap.yaml" >"$IT/mutant.yaml"
    if cmp -s "$IT/vap.yaml" "$IT/mutant.yaml"; then fail "sed '$m' changed nothing"; fi
    run node "$EF_NPM/admission.mjs" "$IT/mutant.yaml" "$ADMISSION/cases.yaml"
    [ "$status" -eq 1 ] || fail "the corpus accepted the policy weakened by: $m"
  done
}

# --- the bundle -------------------------------------------------------------------

@test "bundle: the installed plugin answers VERSION in an empty chroot holding only what the installer wrote" {
  # No stand-in plugins in the chroot: the bin dir check is skipped for this one.
  render "$IT/chart.json" --set cni.skipBinDirCheck=true
  host_with 10-calico.conflist "$IT/chart.json"
  rm -f "$BIN_DIR"/* "$CONF_DIR"/00-aaa-broken.conflist "$CONF_DIR"/README "$CONF_DIR"/*.bak
  run run_container "$IT/chart.json" init
  assert_success
  # Nothing but the CNI dirs: no libc, no loader, no /proc, no /dev.
  rmdir "$HOST/var/log/egress-fence" "$HOST/var/log" "$HOST/var" "$HOST/run/netns" "$HOST/run" # kubelet's hostPath dirs, empty
  [ "$(find "$HOST" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort | paste -sd' ')" = "etc opt" ]
  # The launcher itself is static: no program interpreter.
  run readelf -l "$BIN_DIR/egress-fence"
  refute_output --partial "INTERP"
  # Every shared library the programs need is carried in the bundle, never
  # the host's: libmnl (Debian ships no archive of it), libc, and for
  # egress-fence-ctl libstdc++, prometheus-cpp... simdjson is either loaded
  # (and carried) or compiled in (EF_SIMDJSON_SOURCE): then nothing of it is
  # left for the loader to find.
  local prog lib needed
  for prog in egress-fence egress-fence-ctl; do
    needed="$(readelf -d "$BIN_DIR/egress-fence.d/$prog.real" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')"
    if ! grep -qx 'libsimdjson.so.[0-9]*' <<<"$needed"; then
      run -0 nm -D --undefined-only "$BIN_DIR/egress-fence.d/$prog.real"
      refute_output --partial simdjson
    fi
    for lib in $needed; do
      [ -f "$BIN_DIR/egress-fence.d/$lib" ] || fail "$prog needs $lib, which the bundle does not carry"
    done
  done
  # nettle and libnftnl are linked in from their archives (CMakeLists.txt) or,
  # with EF_SHARED_LIBS, carried like the others (checked above).
  run nm -D --undefined-only "$BIN_DIR/egress-fence.d/egress-fence.real"
  assert_success
  if ! grep -q 'NEEDED.*libnettle' <<<"$(readelf -d "$BIN_DIR/egress-fence.d/egress-fence.real")"; then
    refute_output --partial nettle_sha256
  fi
  if ! grep -q 'NEEDED.*libnftnl' <<<"$(readelf -d "$BIN_DIR/egress-fence.d/egress-fence.real")"; then
    refute_output --partial nftnl_
  fi
  # The metrics server's libraries (prometheus-cpp, civetweb) are egress-fence-ctl's
  # alone: the plugin never loads them (scripts/image.sh runs the ctl in an empty root).
  run -0 readelf -d "$BIN_DIR/egress-fence.d/egress-fence.real"
  refute_output --partial prometheus
  refute_output --partial civetweb
  run -0 readelf -d "$BIN_DIR/egress-fence.d/egress-fence-ctl.real"
  assert_output --partial libprometheus-cpp-pull
  # A sanitized build (scripts/sanitize.sh) cannot run LSan without /proc.
  run env -i ${ASAN_OPTIONS:+ASAN_OPTIONS=detect_leaks=0} CNI_COMMAND=VERSION "$(command -v chroot)" "$HOST" /opt/cni/bin/egress-fence </dev/null
  assert_success
  jq -e '.cniVersion and (.supportedVersions | index("0.3.1") and index("1.0.0"))' <<<"$output"
}

@test "bundle: a missing bundle fails with a CNI error object, not a crash" {
  render "$IT/chart.json"
  host_with 10-calico.conflist "$IT/chart.json"
  run run_container "$IT/chart.json" init
  assert_success
  rm "$BIN_DIR/egress-fence.d"
  run env -i ${ASAN_OPTIONS:+ASAN_OPTIONS=detect_leaks=0} CNI_COMMAND=ADD "$(command -v chroot)" "$HOST" /opt/cni/bin/egress-fence </dev/null
  assert_failure
  jq -e '.code == 5 and (.msg | test("launcher"))' <<<"$output"
  run run_container "$IT/chart.json" liveness
  assert_failure
  assert_output --partial "egress-fence.d"
}

# --- the corpus -------------------------------------------------------------------

@test "install over Calico 0.3.1 conflist (generic): owned copy, verify, idempotent, exact uninstall" {
  check_owned 10-calico.conflist
}

@test "install over Cilium (generic)" {
  check_owned 05-cilium.conflist
}

@test "install over flannel with portmap (k3s preset)" {
  check_owned 10-flannel.conflist --set platform=k3s
}

@test "install over kindnet (generic)" {
  check_owned 10-kindnet.conflist
}

@test "install over AWS VPC CNI (generic)" {
  check_owned 10-aws.conflist
}

@test "install over a Multus .conf (openshift preset): wrapped into a list" {
  check_owned 00-multus.conf --set platform=openshift
}

@test "install over a bare bridge .conf (microk8s preset)" {
  check_owned 10-bridge.conf --set platform=microk8s
}

@test "install over the corpus in chained mode (gke preset): entry last, exact uninstall" {
  render "$IT/chart.json" --set platform=gke --set cni.mode=chained
  render "$IT/uninstall.json" --set platform=gke --set uninstall=true
  local primary
  for primary in 10-calico.conflist 05-cilium.conflist 10-flannel.conflist 10-kindnet.conflist 10-aws.conflist; do
    rm -rf "$HOST"
    host_with "$primary" "$IT/chart.json"
    snapshot "$HOST" >"$IT/before"
    run run_container "$IT/chart.json" init
    assert_success
    [ ! -e "$CONF_DIR/00-egress-fence.conflist" ]
    diff <(as_list "$CORPUS/primaries/$primary") <(jq -S '{name, cniVersion, plugins: .plugins[:-1]}' "$CONF_DIR/$primary")
    jq -e '.plugins[-1].type == "egress-fence"' "$CONF_DIR/$primary"
    [ "$(stat -c %a "$CONF_DIR/$primary")" = 640 ]
    run run_container "$IT/chart.json" liveness
    assert_success
    run run_container "$IT/uninstall.json" init
    assert_success
    diff "$IT/before" <(snapshot "$HOST")
  done
}

@test "chained mode refuses a .conf primary and leaves the conf dir alone" {
  render "$IT/chart.json" --set cni.mode=chained
  host_with 10-bridge.conf "$IT/chart.json"
  snapshot "$CONF_DIR" >"$IT/before"
  run run_container "$IT/chart.json" init
  assert_failure
  assert_output --partial "--mode owned"
  diff "$IT/before" <(snapshot "$CONF_DIR")
}

# --- drift ------------------------------------------------------------------------

# --- the bin dir must be the runtime's ---------------------------------------------

@test "bin dir: install refuses one without the primary chain's plugins, naming them and where runtimes keep them, touching nothing" {
  render "$IT/chart.json"
  host_with 10-calico.conflist "$IT/chart.json"
  rm "$BIN_DIR/calico" "$BIN_DIR/bandwidth"
  snapshot "$HOST" >"$IT/before"
  run run_container "$IT/chart.json" init
  assert_failure
  assert_output --partial "lacks the plugins of the chain in 10-calico.conflist (calico, bandwidth)"
  assert_output --partial "k3s v1.28.14, v1.29.9, v1.30.5, v1.31.1 and later /var/lib/rancher/k3s/data/cni"
  assert_output --partial "cni.skipBinDirCheck=true"
  diff "$IT/before" <(snapshot "$HOST")
}

@test "bin dir: on a current k3s node the preset's dir passes, the pre-2024 data/current/bin is refused" {
  render "$IT/new.json" --set platform=k3s
  render "$IT/old.json" --set platform=k3s --set cni.binDir=/var/lib/rancher/k3s/data/current/bin
  # k3s's flannel chain, its plugins in the fixed dir k3s uses since v1.28.14.
  host_with 10-flannel.conflist "$IT/new.json"
  [ -x "$HOST/var/lib/rancher/k3s/data/cni/flannel" ]
  mkdir -p "$HOST/var/lib/rancher/k3s/data/current/bin" # kubelet creates a hostPath dir
  snapshot "$HOST" >"$IT/before"
  run run_container "$IT/old.json" init
  assert_failure
  assert_output --partial "(flannel, portmap)"
  diff "$IT/before" <(snapshot "$HOST")
  run run_container "$IT/new.json" init
  assert_success
  run run_container "$IT/new.json" readiness
  assert_success
}

@test "bin dir: verify fails when the chain's plugins are no longer in the bin dir, and says which" {
  render "$IT/chart.json"
  host_with 10-kindnet.conflist "$IT/chart.json"
  run run_container "$IT/chart.json" init
  assert_success
  run run_container "$IT/chart.json" readiness
  assert_success
  rm "$BIN_DIR/ptp"
  run run_container "$IT/chart.json" readiness
  assert_failure
  assert_output --partial "not fenced: the CNI bin dir"
  assert_output --partial "(ptp)"
  run run_container "$IT/chart.json" liveness
  assert_failure
  assert_output --partial "(ptp)"
}

@test "bin dir: cni.skipBinDirCheck (--skip-bin-dir-check) installs and verifies with the primary's plugins elsewhere" {
  render "$IT/chart.json" --set cni.skipBinDirCheck=true
  host_with 10-calico.conflist "$IT/chart.json"
  rm "$BIN_DIR/calico"
  run run_container "$IT/chart.json" init
  assert_success
  run run_container "$IT/chart.json" readiness
  assert_success
  run run_container "$IT/chart.json" liveness
  assert_success
}

@test "bin dir: run on the host, install names the dir that holds the missing plugins" {
  mkdir -p "$IT/bin" "$IT/net.d"
  cp "$CORPUS/primaries/10-bridge.conf" "$IT/net.d/"
  run "$EF_BUNDLE/egress-fence-ctl" install --cni-bin-dir "$IT/bin" --cni-conf-dir "$IT/net.d" \
    --plugin-config "$EF_ROOT/conf/examples/design-example.json" --plugin-binary "$EF_BUNDLE/egress-fence"
  assert_failure
  assert_output --partial "(bridge)"
  # Debian's reference plugins (bootstrap installs them) are one of the known dirs.
  local dir
  dir="$(grep -o 'they are in [^:]*' <<<"$output" | cut -d' ' -f4)"
  [ -n "$dir" ] || fail "the error names no directory of reference plugins: $output"
  [ -x "$dir/bridge" ] || fail "the error names $dir, which holds no bridge plugin"
  [ -z "$(ls -A "$IT/bin")" ]
  [ "$(ls "$IT/net.d")" = 10-bridge.conf ]
}

@test "owned mode: the primary rewrites its file; the owned copy still wins, verify flags the drift, install repairs" {
  render "$IT/chart.json"
  host_with 10-calico.conflist "$IT/chart.json"
  run run_container "$IT/chart.json" init
  assert_success
  # Calico restarts and rewrites its conflist with a new MTU (and without any foreign entry).
  jq '.plugins[0].mtu = 1400' "$CORPUS/primaries/10-calico.conflist" >"$CONF_DIR/10-calico.conflist"
  # The runtime still picks the owned file, which still fences.
  run "$EF_BUNDLE/egress-fence-ctl" verify --cni-conf-dir "$CONF_DIR"
  assert_failure
  assert_output --partial "10-calico.conflist changed since"
  jq -e '.plugins[-1].type == "egress-fence"' "$CONF_DIR/00-egress-fence.conflist"
  run run_container "$IT/chart.json" liveness
  assert_failure
  assert_output --partial "10-calico.conflist changed since"
  # kubelet restarts the main container, whose command installs again.
  run run_container "$IT/chart.json" init
  assert_success
  jq -e '.plugins[0].mtu == 1400 and .plugins[-1].type == "egress-fence"' "$CONF_DIR/00-egress-fence.conflist"
  run run_container "$IT/chart.json" liveness
  assert_success
}

@test "chained mode: the primary rewrites its file, verify fails, install repairs" {
  render "$IT/chart.json" --set cni.mode=chained
  host_with 10-calico.conflist "$IT/chart.json"
  run run_container "$IT/chart.json" init
  assert_success
  cp "$CORPUS/primaries/10-calico.conflist" "$CONF_DIR/10-calico.conflist"
  run run_container "$IT/chart.json" liveness
  assert_failure
  assert_output --partial "no egress-fence entry"
  run run_container "$IT/chart.json" init
  assert_success
  run run_container "$IT/chart.json" liveness
  assert_success
}

@test "owned file renamed away as Cilium's exclusive mode does: verify fails, install repairs" {
  render "$IT/chart.json"
  host_with 05-cilium.conflist "$IT/chart.json"
  run run_container "$IT/chart.json" init
  assert_success
  mv "$CONF_DIR/00-egress-fence.conflist" "$CONF_DIR/00-egress-fence.conflist.cilium_bak"
  run run_container "$IT/chart.json" liveness
  assert_failure
  assert_output --partial "05-cilium.conflist, which has no egress-fence entry"
  run run_container "$IT/chart.json" init
  assert_success
  run run_container "$IT/chart.json" liveness
  assert_success
}

@test "a changed plugin config makes verify fail until install runs with it" {
  render "$IT/chart.json"
  render "$IT/debug.json" --set pluginConfig.logLevel=debug
  host_with 10-calico.conflist "$IT/chart.json"
  run run_container "$IT/chart.json" init
  assert_success
  run run_container "$IT/debug.json" liveness
  assert_failure
  assert_output --partial "differs from the plugin config"
  run run_container "$IT/debug.json" init
  assert_success
  run run_container "$IT/debug.json" liveness
  assert_success
}

# --- failure modes ----------------------------------------------------------------

@test "an invalid plugin config: every problem reported, nothing on the host touched" {
  cat >"$IT/bad.json" <<'EOF'
{"pluginConfig": {"selectors": [{"namespaces": ["sandboxes"], "profile": "nope"}],
                  "profiles": {"p": {"allow": [{"cidr": "10.0.0.1/8", "protocol": "tcp", "ports": [80]}]}}}}
EOF
  render "$IT/chart.json" -f "$IT/bad.json"
  host_with 10-calico.conflist "$IT/chart.json"
  snapshot "$HOST" >"$IT/before"
  run run_container "$IT/chart.json" init
  assert_failure
  assert_output --partial "nothing was installed"
  assert_output --partial "selectors[0].profile"
  assert_output --partial "profiles.p.allow[0].cidr"
  diff "$IT/before" <(snapshot "$HOST")
}

@test "no primary config: install waits a bounded time, fails with code 11 and writes no config" {
  render "$IT/chart.json" --set cni.waitForPrimarySeconds=1
  CONF_DIR="$HOST$(hostpath "$IT/chart.json" cni-conf)"
  mkdir -p "$CONF_DIR"
  cp "$CORPUS/distractors/"* "$CONF_DIR/"
  run run_container "$IT/chart.json" init
  [ "$status" -eq 11 ]
  assert_output --partial "no primary CNI config"
  [ ! -e "$CONF_DIR/00-egress-fence.conflist" ]
}

@test "install waits for a primary CNI that writes its config later" {
  render "$IT/chart.json" --set cni.waitForPrimarySeconds=30
  # shellcheck disable=SC2030 # this test's own; others get theirs from host_with
  CONF_DIR="$HOST$(hostpath "$IT/chart.json" cni-conf)"
  mkdir -p "$CONF_DIR"
  fake_plugins "$HOST/opt/cni/bin" flannel portmap
  run_container "$IT/chart.json" init >"$IT/install.log" 2>&1 &
  local pid=$!
  # The installer is polling: the conf dir has no config yet, nothing is installed.
  local i
  for i in $(seq 1 500); do
    if grep -q "waiting up to 30s for a primary CNI config" "$IT/install.log"; then break; fi
    sleep 0.02
  done
  grep -q "waiting up to 30s for a primary CNI config" "$IT/install.log" || fail "the installer is not waiting: $(cat "$IT/install.log")"
  [ ! -e "$CONF_DIR/00-egress-fence.conflist" ]
  [ ! -e "$HOST/opt/cni/bin/egress-fence" ]
  cp "$CORPUS/primaries/10-flannel.conflist" "$CONF_DIR/"
  wait "$pid"
  grep -q "chain of 10-flannel.conflist" "$IT/install.log"
}

@test "the main container installs, then pauses until SIGTERM and exits 0" {
  render "$IT/chart.json"
  host_with 10-kindnet.conflist "$IT/chart.json"
  RUN_PIDFILE="$IT/main.pid" run_container "$IT/chart.json" main >"$IT/main.log" 2>&1 &
  local pid=$!
  # shellcheck disable=SC2031 # host_with set CONF_DIR in this very test
  ef_wait_for_file "$CONF_DIR/00-egress-fence.conflist" 10
  run run_container "$IT/chart.json" readiness
  assert_success
  # Still running: it pauses after installing.
  kill -0 "$pid"
  kill -TERM "$(cat "$IT/main.pid")"
  wait "$pid"
}

# wait_for_line FILE TEXT: polls FILE for a line holding TEXT (10 s at most).
wait_for_line() {
  local i
  for i in $(seq 1 500); do
    if grep -qF -- "$2" "$1" 2>/dev/null; then return 0; fi
    sleep 0.02
  done
  echo "no line with $2 in $1:" >&2
  cat "$1" >&2
  return 1
}

@test "kubectl logs: the main container prints each line the plugin appends to its log, once, across rotation and truncation" {
  render "$IT/chart.json"
  host_with 10-kindnet.conflist "$IT/chart.json"
  local log="$HOST/var/log/egress-fence/egress-fence.log" out="$IT/main.log"
  mkdir -p "${log%/*}"
  echo '{"n": 0, "old": "written before the container started"}' >"$log"
  RUN_PIDFILE="$IT/main.pid" run_container "$IT/chart.json" main >"$out" 2>&1 &
  local pid=$!
  wait_for_line "$out" "following /var/log/egress-fence/egress-fence.log"
  # The real plugin's record of a DEL (lenient: it needs nothing but the envelope).
  jq -cn --arg f "$log" '{cniVersion: "1.0.0", logFile: $f}' |
    env -i CNI_COMMAND=DEL CNI_CONTAINERID=c1 CNI_NETNS= CNI_IFNAME=eth0 CNI_PATH="$BIN_DIR" \
      CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=p1" "$BIN_DIR/egress-fence"
  wait_for_line "$out" '"pod":"ns1/p1"'
  echo '{"n": 1}' >>"$log"
  printf '{"n": 2, "half": ' >>"$log"
  wait_for_line "$out" '{"n": 1}'
  printf '"a line written in two pieces"}\n' >>"$log"
  # Rotated as the plugin rotates it (rename to .1, a new file), with a line
  # in each the follower has not read yet.
  echo '{"n": 3}' >>"$log"
  mv "$log" "$log.1"
  echo '{"n": 4, "pad": "longer than the next line"}' >"$log"
  wait_for_line "$out" '{"n": 4'
  # Truncated in place (logrotate's copytruncate).
  : >"$log"
  echo '{"n": 5}' >>"$log"
  wait_for_line "$out" '{"n": 5}'
  kill -TERM "$(cat "$IT/main.pid")"
  wait "$pid"
  # Exactly the appended lines, in order, each once; not the one from before.
  run grep -E '^\{' "$out"
  assert_equal "$(jq -r '.n // .verb' <<<"$output" | paste -sd' ')" "DEL 1 2 3 4 5"
  jq -se 'map(select(.verb == "DEL")) | length == 1 and .[0].outcome == "removed" and .[0].containerId == "c1"' <<<"$output"
  assert_line '{"n": 2, "half": "a line written in two pieces"}'
}

# --- with the plugin: pods through the go-cni runtime driver ---------------------

# A host root whose conf dir holds the test's reference chain without the fence
# (a real bridge primary) and containerd's loopback network; the chart's
# plugin config is the reference entry. Sets RENDERED, CONF_DIR, BIN_DIR.
pod_host() {
  ef_setup
  ef_write_conf --no-fence
  ef_render_template "$EF_CONF_SRC/reference-chain.conflist" |
    jq '{pluginConfig: (.plugins[] | select(.type == "egress-fence") |
          {logFile, logLevel, profileAnnotation, selectors, profiles})}' >"$IT/values.json"
  RENDERED="$IT/chart.json"
  render "$RENDERED" -f "$IT/values.json" "$@"
  CONF_DIR="$HOST$(hostpath "$RENDERED" cni-conf)"
  BIN_DIR="$HOST$(hostpath "$RENDERED" cni-bin)"
  mkdir -p "$CONF_DIR" "$BIN_DIR"
  cp "$EF_CONFDIR"/*.conflist "$CONF_DIR/"
  # The runtime's bin dir holds the primary's plugins (the real reference ones).
  cp "$EF_CNI_PLUGIN_DIR/bridge" "$EF_CNI_PLUGIN_DIR/host-local" "$EF_CNI_PLUGIN_DIR/loopback" "$BIN_DIR/"
}

# runtime_setup NETNS: the go-cni driver creates a pod with the installed plugin.
runtime_setup() {
  local ns="$1"
  ef_on_teardown ef_rm_runtime_cache "ctr-$ns"
  "$EF_BIN/ef-runtime" setup --conf-dir "$CONF_DIR" --bin-dir "$BIN_DIR:$EF_CNI_PLUGIN_DIR" \
    --netns "/run/netns/$ns" --namespace sandboxes --name "pod-$ns" --id "ctr-$ns" --uid "uid-$ns"
}

@test "pods created after install through the go-cni runtime driver are fenced (owned and chained)" {
  local mode
  for mode in owned chained; do
    rm -rf "$HOST"
    if [ -n "${EF_TMP:-}" ]; then ef_teardown; fi
    pod_host --set cni.mode="$mode"
    run run_container "$RENDERED" init
    assert_success
    ef_world_listen tcp "$EF_DENY4" 8080
    ef_world_listen tcp "$EF_WORLD4" 8080
    ef_setup_pod
    run runtime_setup "$EF_POD"
    assert_success
    ef_table_present
    run ef_probe connect tcp "$EF_DENY4" 8080 --uid "$EF_WORKLOAD_UID" --timeout-ms 2000
    [ "$status" -eq 111 ]
    run ef_probe connect tcp "$EF_WORLD4" 8080 --uid "$EF_WORKLOAD_UID" --timeout-ms 2000
    assert_success
  done
}

@test "binary upgrade while 16 pods are being created: no ETXTBSY, no pod unfenced" {
  pod_host
  run run_container "$RENDERED" init
  assert_success
  # Version 2 of the bundle: the same programs (launcher included) with different bytes.
  local v2="$IT/bundle-v2"
  cp -a "$EF_BUNDLE" "$v2"
  printf 'v2' >>"$v2/egress-fence.d/egress-fence.real"
  printf 'v2' >>"$v2/egress-fence"

  # Upgrade and downgrade without pause until every pod is set up, so that
  # the runtime execs the plugin while its files are being replaced.
  (
    while [ ! -e "$IT/pods-done" ]; do
      "$v2/egress-fence-ctl" install --cni-bin-dir "$BIN_DIR" --cni-conf-dir "$CONF_DIR" \
        --plugin-config "$IT/configmap/config.json" --plugin-binary "$v2/egress-fence" >/dev/null || exit 1
      "$EF_BUNDLE/egress-fence-ctl" install --cni-bin-dir "$BIN_DIR" --cni-conf-dir "$CONF_DIR" \
        --plugin-config "$IT/configmap/config.json" --plugin-binary "$EF_BUNDLE/egress-fence" >/dev/null || exit 1
      echo >>"$IT/upgrades"
    done
  ) 3>&- &
  local upgrader=$!
  # Meanwhile the runtime keeps executing the plugin (as for CNI STATUS/VERSION).
  (
    while [ ! -e "$IT/pods-done" ]; do
      CNI_COMMAND=VERSION "$BIN_DIR/egress-fence" </dev/null >/dev/null 2>>"$IT/version.err" ||
        echo "exit $?" >>"$IT/version.err"
    done
  ) 3>&- &
  local caller=$!
  local i pods=()
  for i in $(seq 1 16); do pods+=("$(ef_new_netns "p$i")"); done
  for i in "${!pods[@]}"; do
    runtime_setup "${pods[$i]}" >"$IT/pod-$i.out" 2>"$IT/pod-$i.err" 3>&- &
    echo $! >>"$IT/pids"
  done
  local failed=0 pid
  while read -r pid; do wait "$pid" || failed=$((failed + 1)); done <"$IT/pids"
  touch "$IT/pods-done"
  wait "$upgrader"
  wait "$caller"
  if [ -s "$IT/version.err" ]; then
    cat "$IT/version.err" >&2
    return 1
  fi
  echo "upgrades during pod creation: $(wc -l <"$IT/upgrades")" >&2
  cat "$IT"/pod-*.err >&2
  [ "$failed" -eq 0 ]
  [ "$(wc -l <"$IT/upgrades")" -ge 2 ]
  if grep -qi "text file busy" "$IT"/pod-*.err; then return 1; fi
  for i in "${!pods[@]}"; do
    ip netns exec "${pods[$i]}" nft list table inet egress_fence >/dev/null
  done
  run run_container "$RENDERED" liveness
  assert_success
}

@test "switching between owned and chained mode keeps the node fenced and uninstall still restores" {
  render "$IT/owned.json"
  render "$IT/chained.json" --set cni.mode=chained
  render "$IT/uninstall.json" --set uninstall=true
  host_with 10-calico.conflist "$IT/owned.json"
  snapshot "$HOST" >"$IT/before"
  run run_container "$IT/owned.json" init
  assert_success
  run run_container "$IT/chained.json" init
  assert_success
  [ ! -e "$CONF_DIR/00-egress-fence.conflist" ]
  run run_container "$IT/chained.json" liveness
  assert_success
  run run_container "$IT/owned.json" init
  assert_success
  # Back to owned: the primary file has its original bytes again.
  cmp "$CORPUS/primaries/10-calico.conflist" "$CONF_DIR/10-calico.conflist"
  run run_container "$IT/owned.json" liveness
  assert_success
  run run_container "$IT/uninstall.json" init
  assert_success
  diff "$IT/before" <(snapshot "$HOST")
}

@test "uninstall: the config goes first; the plugin stays while a pod netns holds a fence, for its DEL, then goes" {
  pod_host
  run run_container "$RENDERED" init
  assert_success
  local fenced plain
  fenced="$(ef_new_netns fenced)"
  plain="$(ef_new_netns plain)"
  run runtime_setup "$fenced"
  assert_success
  # What CRI-O keeps: the config the pod was created with.
  mkdir -p "$IT/cached"
  cp "$CONF_DIR/00-egress-fence.conflist" "$IT/cached/"
  # The node's /run/netns, as the chart mounts it: both pods' netns files.
  mkdir -p "$HOST/run/netns"
  local ns
  for ns in "$fenced" "$plain"; do
    touch "$HOST/run/netns/$ns"
    mount --bind "/run/netns/$ns" "$HOST/run/netns/$ns"
    ef_on_teardown umount "$HOST/run/netns/$ns"
  done
  render "$IT/un.json" -f "$IT/values.json" --set uninstall=true --set probes.periodSeconds=1
  pod_spec "$IT/un.json" >"$IT/un-spec.json"
  jq -e '[.initContainers[], .containers[]] | all(.securityContext.capabilities.add == ["NET_ADMIN", "SYS_ADMIN"])' "$IT/un-spec.json"

  run run_container "$IT/un.json" init
  assert_success
  assert_output --partial "removed /host/cni/net.d/00-egress-fence.conflist"
  assert_output --partial "1 pod netns still hold an egress-fence table: /run/netns/$fenced;"
  [ ! -e "$CONF_DIR/00-egress-fence.conflist" ]
  [ -x "$BIN_DIR/egress-fence" ]
  run run_container "$IT/un.json" readiness
  assert_failure
  assert_output --partial "not uninstalled yet: keeping /host/cni/bin/egress-fence: 1 pod netns"

  RUN_PIDFILE="$IT/un.pid" run_container "$IT/un.json" main >"$IT/un.log" 2>&1 3>&- &
  local pid=$!
  ef_on_teardown pkill -9 -F "$IT/un.pid"
  wait_for_line "$IT/un.log" "keeping /host/cni/bin/egress-fence"
  # The pod's DEL from the cached config still finds the plugin.
  run "$EF_BIN/ef-runtime" remove --conf-dir "$IT/cached" --bin-dir "$BIN_DIR:$EF_CNI_PLUGIN_DIR" \
    --netns "/run/netns/$fenced" --namespace sandboxes --name "pod-$fenced" --id "ctr-$fenced" --uid "uid-$fenced"
  assert_success
  run ef_fence_tables "$fenced"
  assert_output ""
  wait_for_line "$IT/un.log" "removed the plugin from /host/cni/bin"
  [ ! -e "$BIN_DIR/egress-fence" ]
  [ -z "$(find "$BIN_DIR" -name 'egress-fence*')" ]
  run run_container "$IT/un.json" readiness
  assert_success
  assert_output --partial "uninstalled"
  kill -TERM "$(cat "$IT/un.pid")"
  wait "$pid"
}
