#!/usr/bin/env bats
# The real runtime path (issue 11), run as root, offline:
#   - the image is built FROM scratch from the bundle with buildah
#     (scripts/image.sh, the release's recipe), in a private storage;
#   - the chart's DaemonSet pod, rendered by helm, runs under `podman kube play`
#     as rendered: init container, main container, securityContext, volumes,
#     and the probes' verify command executed in the running container;
#   - a private containerd 1.6 (its own root, state, socket and CNI dirs) with
#     its CRI plugin creates the pod sandboxes, asked over CRI by our own client
#     (tests/drivers/ef-cri), with a locally built pause image; it runs the
#     chain from the conflist the chart's pod wrote, with its own conf watcher,
#     netns and annotations;
#   - workloads are containers from a one-file image holding a static probe
#     (exit status = errno: 111 refused, 0 connected);
#   - the chart's pod serves the node's metrics, scraped like Prometheus would
#     (on the pod's address; hostNetwork, so the node's).
# Destinations are listeners in a sandbox of an unselected namespace on the
# same test bridge; pods get no gateway and no default route (IPAM routes only
# the test subnet), so nothing leaves the machine even without the fence.

load helpers

CHART="$EF_ROOT/install/helm/egress-fence"
RT_VERSION="$(sed -nE 's/^project\(egress-fence VERSION ([0-9.]+).*/\1/p' "$EF_ROOT/CMakeLists.txt")"
RT_IMAGE="localhost/egress-fence"
RT_PAUSE_IMAGE="localhost/ef-runtime-pause:1"
RT_PROBE_IMAGE="localhost/ef-runtime-probe:1"
RT_ALLOWED_PORT=8080
RT_DENIED_PORT=9090
# The chart's default metrics.port; the pod is hostNetwork, so it is taken on this machine.
RT_METRICS_PORT=9739

# --- once per file: helm, images, private podman storage --------------------------

setup_file() {
  EF_HELM="$("$EF_ROOT/scripts/helm.sh")"
  export EF_HELM EF_NPM="$EF_ROOT/.deps/npm"
  RT_FILE="$(mktemp -d /tmp/ef-runtime.XXXXXX)"
  export RT_FILE

  # Host paths podman/buildah and containerd create outside their configured
  # dirs; whatever did not exist before this file is removed after it.
  local p
  : >"$RT_FILE/created"
  for p in /var/lib/containers /run/containerd /run/runc /run/mount; do
    [ -e "$p" ] || echo "$p" >>"$RT_FILE/created"
  done

  # podman and buildah: storage, state, runtime root and networks under
  # $RT_FILE (the storage flags are on every command: rt_podman, rt_buildah),
  # and this machine's hard limits as the containers' ulimits.
  mkdir -p "$RT_FILE/podman"
  cat >"$RT_FILE/podman/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$RT_FILE/podman/storage"
runroot = "$RT_FILE/podman/run"
EOF
  cat >"$RT_FILE/podman/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$RT_FILE/podman/events.log"
tmp_dir = "$RT_FILE/podman/libpod"
[network]
network_config_dir = "$RT_FILE/podman/net"
EOF
  export CONTAINERS_CONF="$RT_FILE/podman/containers.conf"
  export CONTAINERS_STORAGE_CONF="$RT_FILE/podman/storage.conf"

  # The image, v1 and v2: the bundle as built, and the same programs with
  # different bytes (an upgrade the installer must roll out by its swap).
  "$EF_ROOT/scripts/bundle.sh" "$EF_BIN" "$RT_FILE/bundle-v1" >/dev/null
  cp -a "$RT_FILE/bundle-v1" "$RT_FILE/bundle-v2"
  printf 'v2' >>"$RT_FILE/bundle-v2/egress-fence.d/egress-fence.real"
  printf 'v2' >>"$RT_FILE/bundle-v2/egress-fence"
  "$EF_ROOT/scripts/image.sh" --bundle "$RT_FILE/bundle-v1" --version "$RT_VERSION" >"$RT_FILE/image-v1.id"
  "$EF_ROOT/scripts/image.sh" --bundle "$RT_FILE/bundle-v2" --version "$RT_VERSION-v2" >"$RT_FILE/image-v2.id"

  # The sandbox (pause) image and the workload image, as OCI archives for ctr.
  mkdir -p "$RT_FILE/pause-root" "$RT_FILE/probe-root"
  install -m 0755 "$EF_BIN/ef-pause" "$RT_FILE/pause-root/pause"
  install -m 0755 "$EF_BIN/efprobe-static" "$RT_FILE/probe-root/efprobe"
  "$EF_ROOT/tests/runtime/oci-archive.sh" "$RT_PAUSE_IMAGE" "$RT_FILE/pause.tar" "$RT_FILE/pause-root" -- /pause
  "$EF_ROOT/tests/runtime/oci-archive.sh" "$RT_PROBE_IMAGE" "$RT_FILE/probe.tar" "$RT_FILE/probe-root" \
    --user 65534 -- /efprobe
}

teardown_file() {
  [ -n "${RT_FILE:-}" ] && [ -d "$RT_FILE" ] || return 0
  rt_podman pod rm --all --force --time 0 >/dev/null 2>&1 || true
  rt_podman system reset --force >/dev/null 2>&1 || true
  rt_umount_under "$RT_FILE"
  rt_rmdir_cgroups libpod_parent
  local p
  while IFS= read -r p; do
    # Only what this file created, and only if nothing else put files there.
    case "$p" in
      /var/lib/containers) rm -f /var/lib/containers/cache/blob-info-cache-v1.boltdb
        rmdir /var/lib/containers/cache /var/lib/containers 2>/dev/null || true ;;
      /run/containerd) rmdir /run/containerd/s /run/containerd 2>/dev/null || true ;;
      *) rmdir "$p" 2>/dev/null || true ;;
    esac
  done <"$RT_FILE/created"
  rm -rf "$RT_FILE"
}

rt_storage_flags() {
  printf '%s\n' --root "$RT_FILE/podman/storage" --runroot "$RT_FILE/podman/run" --storage-driver overlay
}

# podman on the private storage. (Its runc state stays in runc's default
# /run/runc: podman 4.3 does not hand --runtime-flag to the cleanup process it
# runs when a container exits, which then leaves the runc container behind.)
rt_podman() {
  local flags
  mapfile -t flags < <(rt_storage_flags)
  podman "${flags[@]}" --tmpdir "$RT_FILE/podman/libpod" --network-config-dir "$RT_FILE/podman/net" "$@"
}

rt_buildah() {
  local flags
  mapfile -t flags < <(rt_storage_flags)
  buildah "${flags[@]}" "$@"
}

# rt_umount_under DIR: unmounts whatever is still mounted below DIR, deepest first.
rt_umount_under() {
  local m
  findmnt -rn -o TARGET | grep -F -- "$1/" | sort -r | while IFS= read -r m; do
    umount -l "$m" 2>/dev/null || true
  done
}

# rt_rmdir_cgroups NAME: removes the (empty) cgroup NAME, and its empty
# children, in every v1 hierarchy and the v2 one.
rt_rmdir_cgroups() {
  local d
  for d in /sys/fs/cgroup/*/"$1" /sys/fs/cgroup/"$1"; do
    if [ -d "$d" ]; then find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true; fi
  done
  return 0
}

# --- per test: bridge, CNI dirs, containerd -----------------------------------------

setup() {
  EF_ID="$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
  EF_TMP="$(mktemp -d "/tmp/ef-rt-$EF_ID.XXXXXX")"
  EF_CLEANUP="$EF_TMP/cleanup"
  : >"$EF_CLEANUP"
  ef_sysctl_save net.ipv4.ip_forward
  ef_sysctl_save net.ipv6.conf.all.forwarding

  EF_NET="ef-$EF_ID"
  EF_BRIDGE="efbr$EF_ID"
  local n=$((0x${EF_ID:0:4} % 254 + 1))
  RT_SUBNET4="10.198.$n.0/24"
  RT_BIN="$EF_TMP/cni/bin"
  RT_CONF="$EF_TMP/cni/net.d"
  RT_PRIMARY="$RT_CONF/10-$EF_NET.conflist"
  RT_OWNED="$RT_CONF/00-egress-fence.conflist"
  EF_LOGFILE="$EF_TMP/egress-fence.log"
  RT_CGROUP="ef-rt-$EF_ID"
  mkdir -p "$RT_BIN" "$RT_CONF" "$EF_TMP/ipam" "$EF_TMP/pods"

  ip link add "$EF_BRIDGE" type bridge
  ef_on_teardown ip link delete "$EF_BRIDGE"
  ip link set "$EF_BRIDGE" address "02:ef:${EF_ID:0:2}:${EF_ID:2:2}:${EF_ID:4:2}:${EF_ID:6:2}"
  ip link set "$EF_BRIDGE" up

  # The node's CNI: the primary chain's plugins in the runtime's bin dir
  # (the installer checks they are there) and the primary's conflist.
  cp /usr/lib/cni/bridge /usr/lib/cni/host-local /usr/lib/cni/loopback "$RT_BIN/"
  rt_write_primary
  ef_on_teardown rt_rmdir_cgroups "$RT_CGROUP"
  rt_containerd_start
}

teardown() {
  ef_teardown
}

# The primary CNI's conflist: bridge + host-local, no gateway, IPv4 only, the
# addresses in .10-.99 of the test subnet. rt_write_primary [EXTRA_JQ]
rt_write_primary() {
  local tmp="$RT_PRIMARY.tmp"
  jq -n --arg net "$EF_NET" --arg br "$EF_BRIDGE" --arg ipam "$EF_TMP/ipam" --arg subnet "$RT_SUBNET4" \
    --arg lo "${RT_SUBNET4%.*}.10" --arg hi "${RT_SUBNET4%.*}.99" \
    '{cniVersion: "1.0.0", name: $net, plugins: [{type: "bridge", bridge: $br, isGateway: false,
       isDefaultGateway: false, ipMasq: false, hairpinMode: false,
       ipam: {type: "host-local", dataDir: $ipam, ranges: [[{subnet: $subnet, rangeStart: $lo, rangeEnd: $hi}]]}}]}' |
    jq "${1:-.}" >"$tmp"
  # As primary CNIs write it: a temp file renamed over the old one.
  mv "$tmp" "$RT_PRIMARY"
}

# A private containerd: root, state, sockets, runc state and CNI dirs under
# $EF_TMP. restrict_oom_score_adj: root here lacks CAP_SYS_RESOURCE, so runc
# could not set the sandbox's oom_score_adj of -998.
rt_containerd_config() {
  local d="$EF_TMP/containerd"
  mkdir -p "$d"
  cat >"$d/config.toml" <<EOF
version = 2
root = "$d/root"
state = "$d/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.internal.v1.tracing",
  "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "$d/containerd.sock"
[ttrpc]
  address = "$d/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$d/opt"
[plugins."io.containerd.runtime.v1.linux"]
  runtime_root = "$d/runc-v1"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$RT_PAUSE_IMAGE"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = "$d/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$RT_BIN"
    conf_dir = "$RT_CONF"
    max_conf_num = 1
EOF
  RT_SOCK="$d/containerd.sock"
  echo "$d/config.toml"
}

# Starts containerd (once per test: the stop is registered the first time),
# waits for its CRI, imports the pause and probe images.
rt_containerd_start() {
  local config
  config="$(rt_containerd_config)"
  RT_SOCK="$EF_TMP/containerd/containerd.sock"
  containerd --config "$config" >>"$EF_TMP/containerd/log" 2>&1 3>&- &
  RT_CONTAINERD_PID=$!
  if [ ! -e "$EF_TMP/containerd/stop-registered" ]; then
    : >"$EF_TMP/containerd/stop-registered"
    ef_on_teardown rt_containerd_teardown
  fi
  # Up when its CRI answers at all (image-status exits 0 or 1; 200 is no answer).
  local rc=200
  for _ in $(seq 1 200); do
    if [ -S "$RT_SOCK" ]; then
      rc=0
      rt_cri --timeout 2s image-status "$RT_PAUSE_IMAGE" >/dev/null 2>&1 || rc=$?
      if [ "$rc" -ne 200 ]; then break; fi
    fi
    kill -0 "$RT_CONTAINERD_PID" 2>/dev/null || break
    sleep 0.05
  done
  [ "$rc" -ne 200 ] || { echo "containerd did not come up:" >&2; cat "$EF_TMP/containerd/log" >&2; return 1; }
  local image
  for image in pause probe; do
    ctr --address "$RT_SOCK" -n k8s.io images import "$RT_FILE/$image.tar" >/dev/null
  done
  # The CRI plugin learns of imported images from containerd's events.
  for _ in $(seq 1 100); do
    if rt_cri --timeout 2s image-status "$RT_PAUSE_IMAGE" >/dev/null 2>&1 &&
      rt_cri --timeout 2s image-status "$RT_PROBE_IMAGE" >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.05
  done
  echo "containerd's CRI never listed the imported images" >&2
  return 1
}

# Stops containerd and waits for it (the pods' shims keep running).
rt_containerd_stop() {
  kill -TERM "$RT_CONTAINERD_PID" 2>/dev/null || return 0
  for _ in $(seq 1 200); do
    kill -0 "$RT_CONTAINERD_PID" 2>/dev/null || break
    sleep 0.05
  done
  kill -KILL "$RT_CONTAINERD_PID" 2>/dev/null || true
  wait "$RT_CONTAINERD_PID" 2>/dev/null || true
}

# Teardown: every sandbox stopped and removed through CRI (so the chain's DEL
# runs and the netns go), then containerd stopped; what survives that (a shim
# of this instance, a mount under $EF_TMP) is removed by its exact identity.
rt_containerd_teardown() {
  kill -0 "$RT_CONTAINERD_PID" 2>/dev/null || rt_containerd_start >/dev/null 2>&1 || true
  local id
  for id in $(rt_cri --timeout 20s list-pods 2>/dev/null); do
    rt_cri --timeout 20s stop-pod "$id" >/dev/null 2>&1 || true
    rt_cri --timeout 20s remove-pod "$id" >/dev/null 2>&1 || true
  done
  rt_containerd_stop
  local pid
  for pid in $(rt_pids_with "$RT_SOCK"); do kill -KILL "$pid" 2>/dev/null || true; done
  rt_umount_under "$EF_TMP"
}

# rt_pids_with STRING: processes whose command line contains STRING.
rt_pids_with() {
  local f pid
  for f in /proc/[0-9]*/cmdline; do
    pid="${f#/proc/}"
    pid="${pid%/cmdline}"
    if tr '\0' ' ' <"$f" 2>/dev/null | grep -qF -- "$1"; then echo "$pid"; fi
  done
  return 0
}

rt_cri() { "$EF_BIN/ef-cri" --socket "$RT_SOCK" "$@"; }

# Polls containerd's loaded CNI config (CRI Status, verbose) until
# egress-fence is in the chain (rt_wait_fence_loaded) or not (... absent).
rt_wait_fence_loaded() {
  local want="${1:-present}" has
  for _ in $(seq 1 200); do
    has=absent
    if rt_cri --timeout 5s cni-config 2>/dev/null |
      jq -e '[.Networks[].Config.Plugins[]?.Network.type] | index("egress-fence")' >/dev/null; then
      has=present
    fi
    if [ "$has" = "$want" ]; then return 0; fi
    sleep 0.05
  done
  echo "containerd's CNI config: egress-fence still $has after 10 s" >&2
  rt_cri cni-config | jq -c '[.Networks[] | {name: .Config.Name, source: .Config.Source}]' >&2
  return 1
}

# --- pods and containers over CRI ---------------------------------------------------

# rt_pod NAME NAMESPACE [run-pod flags...]: RunPodSandbox; prints the sandbox id.
# The sandbox is stopped and removed at teardown if the test did not.
rt_pod() {
  local name="$1" ns="$2"
  shift 2
  mkdir -p "$EF_TMP/pods/$name-logs"
  local id
  id="$(rt_cri run-pod --name "$name" --namespace "$ns" --uid "uid-$name-$EF_ID" \
    --log-dir "$EF_TMP/pods/$name-logs" --cgroup-parent "/$RT_CGROUP" \
    --config-out "$EF_TMP/pods/$name.json" "$@")" || return
  echo "$id" >"$EF_TMP/pods/$name.id"
  echo "$id"
}

rt_netns() { rt_cri pod-status "$1" | jq -r '.netns'; }

# rt_container POD_NAME NAME UID [--wait] -- CMD...: a probe-image container in the pod.
rt_container() {
  local pod="$1" name="$2" uid="$3"
  shift 3
  rt_cri run-container --pod "$(cat "$EF_TMP/pods/$pod.id")" --pod-config "$EF_TMP/pods/$pod.json" \
    --name "$name" --image "$RT_PROBE_IMAGE" --user "$uid" "$@"
}

# rt_connect POD_NAME UID ADDR PORT: a workload container (containerd's default
# capabilities) running the probe; returns its exit status (errno), prints its log.
RT_PROBES=0
rt_connect() {
  RT_PROBES=$((RT_PROBES + 1))
  rt_container "$1" "probe-$RT_PROBES" "$2" --wait -- /efprobe connect tcp "$3" "$4" --timeout-ms 3000
}

# The destinations: a sandbox in the unselected namespace "world" with
# listeners on the allowed and the denied port. Sets RT_DEST (its address).
rt_world() {
  local id port netns
  id="$(rt_pod world world)"
  for port in "$RT_ALLOWED_PORT" "$RT_DENIED_PORT"; do
    rt_container world "listen-$port" 1000 -- /efprobe listen tcp 0.0.0.0 "$port" >/dev/null
  done
  netns="$(rt_netns "$id")"
  RT_DEST="$(rt_cri pod-status "$id" | jq -r '.ip')"
  for _ in $(seq 1 200); do
    if [ "$(nsenter --net="$netns" ss -Htln "( sport = :$RT_ALLOWED_PORT or sport = :$RT_DENIED_PORT )" | wc -l)" -eq 2 ]; then
      return 0
    fi
    sleep 0.05
  done
  echo "the world's listeners did not come up" >&2
  return 1
}

# rt_fence_tables NETNS_PATH: the egress_fence tables in a sandbox's netns. When
# nft cannot list them it says so on stdout and fails: empty means none there.
rt_fence_tables() {
  local out
  if ! out="$(nsenter --net="$1" nft list tables 2>&1)"; then
    echo "rt_fence_tables: nft list tables failed in $1: $out"
    return 1
  fi
  grep -F egress_fence <<<"$out" || true
}

# --- the chart's pod under podman ------------------------------------------------------

# The plugin config the chart carries in this suite: namespace "sandboxes" gets
# proxy-only (exempt UID 1337); OpenShell-annotated pods get the openshell
# profile with the proxy UID of their annotation. Both allow the allowed port
# on the test subnet, nothing else.
rt_values() {
  cat >"$EF_TMP/values.yaml" <<EOF
image:
  repository: $RT_IMAGE
  tag: "${1:-$RT_VERSION}"
cni:
  binDir: $RT_BIN
  confDir: $RT_CONF
  waitForPrimarySeconds: 30
pluginConfig:
  logFile: $EF_LOGFILE
  logLevel: info
  selectors:
    - namespaces: [sandboxes]
      profile: proxy-only
    - annotations: {openshell.ai/cni: enabled}
      profile: openshell
      exemptUidAnnotation: openshell.ai/proxy-uid
      exemptUidRange: {min: 1, max: 65535}
  profiles:
    proxy-only:
      exemptUids: [$EF_PROXY_UID]
      allow:
        - {cidr: $RT_SUBNET4, protocol: tcp, ports: [$RT_ALLOWED_PORT]}
    openshell:
      exemptUids: []
      allow:
        - {cidr: $RT_SUBNET4, protocol: tcp, ports: [$RT_ALLOWED_PORT]}
EOF
  echo "$EF_TMP/values.yaml"
}

# rt_render OUT_BASE [TAG]: helm template -> OUT_BASE.yaml and OUT_BASE.json,
# and the Pod kubelet would create from the DaemonSet -> OUT_BASE.pod.yaml
# (with the ConfigMap). restartPolicy OnFailure: kubelet re-runs an init
# container only when it fails; podman 4.3 gives init containers the pod's
# policy (podman#16343), so "Always" would restart a finished init container.
# What kubelet does that podman 4.3 does not, done here: the env var from
# status.podIP gets the value kubelet gives a hostNetwork pod, the node's
# address (here $RT_POD_IP, an address of lo; podman cannot resolve that
# fieldRef on this machine: "route ip+net: no such network interface"), and
# $(VAR) in the command is expanded from the env (podman passes it as it is).
# The containers' ports are dropped: kubelet publishes nothing for a
# hostNetwork pod, podman refuses them ("PortMappings can only be used with
# Bridge or slirp4netns networking"); the probes find theirs in the rendered spec.
RT_POD_IP=127.0.0.2
rt_render() {
  local out="$1" tag="${2:-$RT_VERSION}"
  "$EF_HELM" template "ef-$EF_ID" "$CHART" --namespace kube-system -f "$(rt_values "$tag")" >"$out.yaml"
  node "$EF_NPM/tojson.mjs" "$out.yaml" >"$out.json"
  jq -c '(.[] | select(.kind == "ConfigMap")),
    (.[] | select(.kind == "DaemonSet") | {apiVersion: "v1", kind: "Pod",
      metadata: {name: .metadata.name, namespace: .metadata.namespace,
                 labels: .spec.template.metadata.labels, annotations: .spec.template.metadata.annotations},
      spec: (.spec.template.spec + {restartPolicy: "OnFailure"}
        | .containers |= map(
            (if .env then .env |= map(if .valueFrom.fieldRef.fieldPath == "status.podIP"
              then {name, value: $ip} else . end) else . end)
            | . as $c
            | (if .env then .command |= map(reduce ($c.env[] | select(.value)) as $e (.;
                gsub("\\$\\(" + $e.name + "\\)"; $e.value))) else . end)
            | del(.ports)))})' --arg ip "$RT_POD_IP" "$out.json" |
    sed '1!s/^/---\n/' >"$out.pod.yaml"
}

rt_pod_spec() { jq '.[] | select(.kind == "DaemonSet") | .spec.template.spec' "$1.json"; }

# rt_play OUT_BASE [kube play flags...]: runs the rendered pod; RT_MAIN is its
# main container. The pod is removed at teardown.
rt_play() {
  local out="$1"
  shift
  # The DaemonSet is hostNetwork: podman gives the pod the host's netns, as
  # kubelet does, and creates no network of its own.
  [ "$(rt_pod_spec "$out" | jq -r '.hostNetwork // false')" = true ] ||
    { echo "the rendered pod is not hostNetwork" >&2; return 1; }
  if [ ! -e "$EF_TMP/podman-registered" ]; then
    : >"$EF_TMP/podman-registered"
    ef_on_teardown rt_podman pod rm --force --time 0 "ef-$EF_ID"
  fi
  rt_podman kube play "$@" "$out.pod.yaml" >"$EF_TMP/play.log" 2>&1 ||
    { cat "$EF_TMP/play.log" >&2; return 1; }
  RT_MAIN="ef-$EF_ID-$(rt_pod_spec "$out" | jq -r '.containers[0].name')"
  [ "$(rt_podman inspect --format '{{.State.Status}}' "$RT_MAIN")" = running ] ||
    { cat "$EF_TMP/play.log" >&2; rt_podman logs "$RT_MAIN" >&2; return 1; }
  # The main container installs, then serves its probes over HTTP: until it
  # answers at all, kubelet's probes would only be retried.
  if rt_pod_spec "$out" | jq -e '.containers[0].readinessProbe.httpGet' >/dev/null; then
    local _
    for _ in $(seq 1 200); do
      if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$RT_POD_IP:$RT_METRICS_PORT/healthz")" != 000 ]; then return 0; fi
      sleep 0.05
    done
    echo "the main container's /healthz never answered" >&2
    rt_podman logs "$RT_MAIN" >&2
    return 1
  fi
}

# rt_probe OUT_BASE liveness|readiness: the probe as kubelet runs it. An exec
# probe: its command, exactly as rendered, in the running main container
# (podman's own healthcheck would wrap it in /bin/sh -c, which the image does
# not have). An httpGet probe: a GET from the node to the pod's address (or
# the probe's host) at its port, which passes with a status of 200-399;
# prints the body.
rt_probe() {
  local probe
  probe="$(rt_pod_spec "$1" | jq -c ".containers[0].${2}Probe")"
  [ "$probe" != null ] || { echo "no $2 probe rendered" >&2; return 1; }
  if jq -e '.httpGet' <<<"$probe" >/dev/null; then
    local port host code
    port="$(rt_pod_spec "$1" | jq -r --argjson p "$probe" '$p.httpGet.port as $want |
      if ($want | type) == "number" then $want else (.containers[0].ports[] | select(.name == $want) | .containerPort) end')"
    host="$(jq -r --arg ip "$RT_POD_IP" '.httpGet.host // $ip' <<<"$probe")"
    code="$(curl -s -o "$EF_TMP/probe.body" -w '%{http_code}' --max-time "$(rt_pod_spec "$1" | jq ".containers[0].${2}Probe.timeoutSeconds // 1")" \
      "http://$host:$port$(jq -r '.httpGet.path' <<<"$probe")")" || true
    cat "$EF_TMP/probe.body" 2>/dev/null
    if [ "$code" -ge 200 ] && [ "$code" -lt 400 ]; then return 0; fi
    return 1
  fi
  local cmd
  mapfile -t cmd < <(jq -r '.exec.command[]' <<<"$probe")
  rt_podman exec "$RT_MAIN" "${cmd[@]}"
}

# What kubelet does once the liveness probe has failed failureThreshold times:
# it kills the main container and starts it again; the init containers do not
# run again. Under podman: kill, then start the pod again (a kube play pod's
# exit policy is "stop", so its infra container stops with the last container;
# the init containers were removed when they completed).
rt_restart_main() {
  local started
  started="$(rt_podman inspect --format '{{.State.StartedAt}}' "$RT_MAIN")"
  rt_podman kill --signal KILL "$RT_MAIN" >/dev/null
  rt_podman wait "$RT_MAIN" >/dev/null
  for _ in $(seq 1 100); do
    case "$(rt_podman pod inspect --format '{{.State}}' "ef-$EF_ID")" in Exited | Stopped) break ;; esac
    sleep 0.05
  done
  rt_podman pod start "ef-$EF_ID" >/dev/null
  if [ "$(rt_podman inspect --format '{{.State.Status}}' "$RT_MAIN")" != running ] ||
    [ "$(rt_podman inspect --format '{{.State.StartedAt}}' "$RT_MAIN")" = "$started" ]; then
    echo "the main container was not restarted" >&2
    rt_podman ps -a --pod >&2
    return 1
  fi
}

# The chart's pod installs the plugin and containerd loads the chain.
rt_install() {
  rt_render "$EF_TMP/chart"
  rt_play "$EF_TMP/chart"
  rt_wait_fence_loaded present
}

# --- the image ----------------------------------------------------------------------

@test "image: built FROM scratch from the bundle, it holds exactly the bundle and runs the installer" {
  local id
  id="$(cat "$RT_FILE/image-v1.id")"
  [ "$(rt_podman image inspect --format '{{.Id}}' "$RT_IMAGE:$RT_VERSION")" = "$id" ]
  run rt_podman image inspect "$RT_IMAGE:$RT_VERSION"
  assert_success
  jq -e '.[0] | .RootFS.Layers | length == 1' <<<"$output"
  jq -e --arg v "$RT_VERSION" '.[0] | .Config.Entrypoint == ["/opt/egress-fence/bin/egress-fence-ctl"]
    and .Config.User == "0:0" and .Labels["org.opencontainers.image.version"] == $v' <<<"$output"
  # Its files, with their contents, are the bundle's under /opt/egress-fence/bin and nothing else.
  local c
  c="$(rt_podman create "$RT_IMAGE:$RT_VERSION")"
  mkdir -p "$EF_TMP/export"
  rt_podman export "$c" | tar -x -C "$EF_TMP/export"
  rt_podman rm "$c" >/dev/null
  # podman adds the mount points of a container's runtime files; the image has none of them.
  rm -rf "$EF_TMP/export/"{dev,proc,sys,etc,run}
  diff <(cd "$EF_TMP/export/opt/egress-fence/bin" && find . -type f -exec sha256sum {} + | sort) \
    <(cd "$RT_FILE/bundle-v1" && find . -type f -exec sha256sum {} + | sort)
  [ "$(cd "$EF_TMP/export" && find . -mindepth 1 -maxdepth 1 -printf '%f\n')" = opt ]
  # The same bundle gives the same image (the recipe is reproducible).
  run "$EF_ROOT/scripts/image.sh" --bundle "$RT_FILE/bundle-v1" --version "$RT_VERSION" --tag "localhost/ef-rt-again:$EF_ID"
  assert_success
  assert_output "$id"
  rt_podman rmi "localhost/ef-rt-again:$EF_ID" >/dev/null
  # And the entrypoint is the installer (its default argument: --help).
  run rt_podman run --rm --network none "$RT_IMAGE:$RT_VERSION"
  assert_success
  assert_output --partial "install"
  assert_output --partial "verify"
}

# --- the chart's pod, for real ---------------------------------------------------------

@test "chart pod (podman kube play): init installs, the main container runs as rendered, both probes verify" {
  rt_render "$EF_TMP/chart"
  rt_play "$EF_TMP/chart"
  local spec
  spec="$(rt_pod_spec "$EF_TMP/chart")"

  # The init container ran to completion: plugin and owned conflist on the "host".
  [ -x "$RT_BIN/egress-fence" ] || fail "no plugin in $RT_BIN"
  [ -L "$RT_BIN/egress-fence.d" ] || fail "no egress-fence.d link in $RT_BIN"
  [ -f "$RT_OWNED" ]
  jq -e '.plugins[-1].type == "egress-fence"' "$RT_OWNED"
  run env -i CNI_COMMAND=VERSION "$RT_BIN/egress-fence" </dev/null
  assert_success

  # The main container's command is the rendered one ($(POD_IP) expanded as kubelet does).
  run rt_podman inspect "$RT_MAIN"
  assert_success
  local inspect="$output"
  jq -e '.containers[0].command | index("--metrics-listen=$(POD_IP)")' <<<"$spec"
  diff <(jq -c --arg ip "$RT_POD_IP" '.containers[0].command | map(sub("\\$\\(POD_IP\\)"; $ip))' <<<"$spec") \
    <(jq -c '.[0] | [(.Config.Entrypoint | if type == "string" then split(" ") else . end)[], (.Config.Cmd // [])[]]' <<<"$inspect")
  jq -e '.[0].State.Status == "running"' <<<"$inspect"
  # hostNetwork: the container is in the host's network namespace.
  [ "$(readlink "/proc/$(jq -r '.[0].State.Pid' <<<"$inspect")/ns/net")" = "$(readlink /proc/self/ns/net)" ]

  # securityContext, seen on the running process from the host: uid 0, of
  # the capabilities only those the metrics server needs (NET_ADMIN and
  # SYS_ADMIN to read the pod netns, SETUID and SETGID to fork its HTTP side
  # off as nobody: 0x2010c0), none inheritable or ambient, no_new_privs, a
  # seccomp filter, a read-only root.
  local pid
  pid="$(jq -r '.[0].State.Pid' <<<"$inspect")"
  grep -qE '^Uid:\s+0\s' "/proc/$pid/status"
  for set in CapPrm CapEff CapBnd; do
    grep -qE "^$set:\s+00000000002010c0$" "/proc/$pid/status" || fail "$(grep "^$set" "/proc/$pid/status")"
  done
  for set in CapInh CapAmb; do
    grep -qE "^$set:\s+0000000000000000$" "/proc/$pid/status"
  done
  grep -qE '^NoNewPrivs:\s+1$' "/proc/$pid/status"
  grep -qE '^Seccomp:\s+2$' "/proc/$pid/status"
  awk '$5 == "/" {print $6}' "/proc/$pid/mountinfo" | grep -qE '(^|,)ro(,|$)'
  jq -e '.containers[0].securityContext.readOnlyRootFilesystem == true and .containers[0].securityContext.capabilities.drop == ["ALL"]' <<<"$spec"
  # The process that listens (on the pod's address and loopback) is its child:
  # uid/gid 65534, no capability in any set but the bounding one, no_new_privs.
  local http
  http="$(ss -Hltnp "sport = :$RT_METRICS_PORT" | grep -o 'pid=[0-9]*' | sort -u | cut -d= -f2)"
  [ "$(wc -w <<<"$http")" = 1 ] || fail "listeners on $RT_METRICS_PORT: $(ss -Hltnp "sport = :$RT_METRICS_PORT")"
  [ "$(ss -Hltn "sport = :$RT_METRICS_PORT" | awk '{print $4}' | sort | paste -sd' ')" = "127.0.0.1:$RT_METRICS_PORT $RT_POD_IP:$RT_METRICS_PORT" ]
  assert_equal "$(awk '/^PPid:/ {print $2}' "/proc/$http/status")" "$pid"
  grep -qE '^Uid:\s+65534\s+65534\s+65534\s+65534$' "/proc/$http/status"
  grep -qE '^Gid:\s+65534\s+65534\s+65534\s+65534$' "/proc/$http/status"
  for set in CapInh CapPrm CapEff CapAmb; do
    grep -qE "^$set:\s+0000000000000000$" "/proc/$http/status" || fail "$(grep "^$set" "/proc/$http/status")"
  done
  grep -qE '^NoNewPrivs:\s+1$' "/proc/$http/status"

  # Volumes: the hostPath dirs at the rendered mount paths, the ConfigMap read-only.
  local mounts
  mounts="$(jq -c '[.[0].Mounts[] | {dst: .Destination, src: .Source, rw: .RW}]' <<<"$inspect")"
  jq -e --arg b "$RT_BIN" '.[] | select(.dst == "/host/cni/bin") | .src == $b and .rw' <<<"$mounts"
  jq -e --arg c "$RT_CONF" '.[] | select(.dst == "/host/cni/net.d") | .src == $c and .rw' <<<"$mounts"
  jq -e '.[] | select(.dst == "/etc/egress-fence") | .rw == false' <<<"$mounts"
  jq -e '.[] | select(.dst == "/run/netns") | .src == "/run/netns" and .rw == false' <<<"$mounts"
  run rt_podman exec "$RT_MAIN" /opt/egress-fence/bin/egress-fence-ctl validate --config /etc/egress-fence/config.json
  assert_success

  # Readiness and liveness: GET /healthz, which answers what verify says.
  jq -e '.containers[0] | .readinessProbe.httpGet.path == "/healthz" and .livenessProbe.httpGet.path == "/healthz"' <<<"$spec"
  run rt_probe "$EF_TMP/chart" readiness
  assert_success
  assert_output --partial "fenced: 00-egress-fence.conflist"
  run rt_probe "$EF_TMP/chart" liveness
  assert_success
  run rt_podman exec "$RT_MAIN" /opt/egress-fence/bin/egress-fence-ctl verify --cni-conf-dir=/host/cni/net.d \
    --cni-bin-dir=/host/cni/bin --plugin-config=/etc/egress-fence/config.json
  assert_success
  assert_equal "$(rt_probe "$EF_TMP/chart" liveness)" "$output"
}

# --- the node's metrics, scraped from the chart's pod -------------------------------------

# rt_scrape NAME: GET /metrics from the chart's pod at its address, as
# Prometheus would (the target is the pod IP and the metrics port), into
# $EF_TMP/NAME.prom.
rt_scrape() {
  curl -sf --max-time 15 -o "$EF_TMP/$1.prom" "http://$RT_POD_IP:$RT_METRICS_PORT/metrics" ||
    { rt_podman logs "$RT_MAIN" >&2; return 1; }
}

@test "metrics: the chart's pod serves the containerd sandboxes' fences (counters as nft has them, matching the config) and a failed ADD counted with its code; promtool passes" {
  rt_install
  rt_world
  local id netns
  id="$(rt_pod agent sandboxes)"
  netns="$(rt_netns "$id")"
  run rt_connect agent 1000 "$RT_DEST" "$RT_DENIED_PORT"
  assert_failure 111
  # A sandbox egress-fence refuses (a proxy-UID annotation of 0): RunPodSandbox fails.
  run rt_pod bad openshell --annotation openshell.ai/cni=enabled --annotation openshell.ai/proxy-uid=0
  assert_failure
  local code
  code="$(jq -r 'select(.verb == "ADD" and .outcome == "error" and .pod == "openshell/bad") | .errorCode' "$EF_LOGFILE" | sort -u)"
  [ -n "$code" ] && [ "$(wc -l <<<"$code")" = 1 ] || fail "the log's failed ADDs of openshell/bad: $code"

  rt_scrape node
  run -0 promtool check metrics <"$EF_TMP/node.prom"
  assert_output ""
  # The fenced sandbox, named as the runtime named it, with the 12 characters of its id.
  local labels="namespace=\"sandboxes\",pod=\"agent\",sandbox_id=\"${id:0:12}\",profile=\"proxy-only\""
  local refused
  refused="$(nsenter --net="$netns" nft -j list counter inet egress_fence tcp_refused | jq '.nftables[] | select(.counter) | .counter.packets')"
  ((refused >= 1)) || fail "nft counts $refused refused packets"
  grep -qxF "egress_fence_packets_total{$labels,table=\"inet\",counter=\"tcp_refused\",verdict=\"denied\"} $refused" "$EF_TMP/node.prom" ||
    fail "no tcp_refused $refused for the agent: $(grep -F 'pod="agent"' "$EF_TMP/node.prom")"
  grep -qxF "egress_fence_matches_config{$labels} 1" "$EF_TMP/node.prom"
  grep -qF "egress_fence_packets_total{$labels,table=\"netdev\",counter=\"raw_dropped\",verdict=\"denied\"} " "$EF_TMP/node.prom"
  # The unselected sandbox has no fence, so no series.
  run grep -F 'pod="world"' "$EF_TMP/node.prom"
  assert_failure
  # Every ADD the log holds, counted by result and code: the refused one with its code.
  assert_equal "$(grep -F "egress_fence_invocations_total{verb=\"ADD\",result=\"error\",code=\"$code\"} " "$EF_TMP/node.prom" | awk '{print $NF}')" \
    "$(jq -s --argjson c "$code" '[.[] | select(.verb == "ADD" and .outcome == "error" and .errorCode == $c)] | length' "$EF_LOGFILE")"
  assert_equal "$(grep -F 'egress_fence_invocations_total{verb="ADD",result="error",code="'"$code"'"} ' "$EF_TMP/node.prom" | awk '{print $NF}')" 1
  assert_equal "$(grep -F 'egress_fence_invocations_total{verb="ADD",result="fenced",code="0"} ' "$EF_TMP/node.prom" | awk '{print $NF}')" \
    "$(jq -s '[.[] | select(.verb == "ADD" and .outcome == "fenced")] | length' "$EF_LOGFILE")"
  grep -qE "^egress_fence_last_failure_timestamp_seconds\{verb=\"ADD\",code=\"$code\"\} [0-9.e+]+$" "$EF_TMP/node.prom"
  assert_equal "$(awk '$1 == "egress_fence_scrape_incomplete" {print $2}' "$EF_TMP/node.prom")" 0
  # The container's log (kubectl logs) shows the failure as the plugin wrote it.
  rt_podman logs "$RT_MAIN" 2>&1 | grep -F '"pod":"openshell/bad"' | grep -qF '"outcome":"error"'
  # The same on loopback (kubectl port-forward).
  run -0 curl -sf -o /dev/null "http://127.0.0.1:$RT_METRICS_PORT/metrics"
  # Gone with the sandbox.
  rt_cri stop-pod "$id" >/dev/null
  rt_cri remove-pod "$id" >/dev/null
  rt_scrape after
  run grep -F "sandbox_id=\"${id:0:12}\"" "$EF_TMP/after.prom"
  assert_failure
}

# --- containerd creates the pods -------------------------------------------------------

@test "containerd picks up the conflist the installer writes (temp file + rename), without a restart" {
  rt_world
  # Before the install: the primary alone, the pod unfenced.
  local before
  before="$(rt_pod before sandboxes)"
  [ -z "$(rt_fence_tables "$(rt_netns "$before")")" ]
  run rt_connect before 1000 "$RT_DEST" "$RT_DENIED_PORT"
  assert_success

  rt_install
  [ "$(rt_cri cni-config | jq -r '.Networks[] | select(.Config.Name != "cni-loopback") | .Config.Source' |
    jq -r '.plugins[-1].type')" = egress-fence ]
  local after
  after="$(rt_pod after sandboxes)"
  run rt_fence_tables "$(rt_netns "$after")"
  assert_line "table inet egress_fence"
  assert_line "table netdev egress_fence"
  run rt_connect after 1000 "$RT_DEST" "$RT_DENIED_PORT"
  assert_failure 111
  # The pod created before the install stays as it was (that is what probe is for).
  [ -z "$(rt_fence_tables "$(rt_netns "$before")")" ]
}

@test "CRI: a fenced pod's workload is refused at a denied destination, reaches an allowed one; the proxy UID connects" {
  rt_install
  rt_world
  local id
  id="$(rt_pod agent sandboxes)"
  run rt_fence_tables "$(rt_netns "$id")"
  assert_line "table inet egress_fence"
  # The workload: runAsUser 1000 with containerd's default capabilities.
  run rt_connect agent 1000 "$RT_DEST" "$RT_DENIED_PORT"
  assert_failure 111
  assert_output --partial "Connection refused"
  run rt_connect agent 1000 "$RT_DEST" "$RT_ALLOWED_PORT"
  assert_success
  # The proxy: runAsUser = the profile's exempt UID.
  run rt_connect agent "$EF_PROXY_UID" "$RT_DEST" "$RT_DENIED_PORT"
  assert_success
  # The plugin logged the pod as the runtime named it.
  jq -e --arg id "$id" 'select(.verb == "ADD" and .containerId == $id) |
    .pod == "sandboxes/agent" and .outcome == "fenced" and .profile == "proxy-only"' "$EF_LOGFILE"
}

@test "CRI: an OpenShell-annotated pod gets the proxy UID of its annotation (annotations delivered by containerd)" {
  rt_install
  rt_world
  local id
  id="$(rt_pod sandbox openshell --annotation openshell.ai/cni=enabled --annotation openshell.ai/proxy-uid=2345)"
  run nsenter --net="$(rt_netns "$id")" nft -j list set inet egress_fence exempt_uids
  assert_success
  jq -e '[.nftables[] | select(.set) | .set.elem[]?] | . == [2345]' <<<"$output"
  run rt_connect sandbox 2345 "$RT_DEST" "$RT_DENIED_PORT"
  assert_success
  run rt_connect sandbox 1000 "$RT_DEST" "$RT_DENIED_PORT"
  assert_failure 111
  # The profile's own exempt UIDs are not this profile's: 1337 is refused too.
  run rt_connect sandbox "$EF_PROXY_UID" "$RT_DEST" "$RT_DENIED_PORT"
  assert_failure 111
  jq -e --arg id "$id" 'select(.verb == "ADD" and .containerId == $id) | .profile == "openshell"' "$EF_LOGFILE"
}

@test "CRI: a pod in an unselected namespace is untouched" {
  rt_install
  rt_world
  local id
  id="$(rt_pod plain default)"
  [ -z "$(rt_fence_tables "$(rt_netns "$id")")" ]
  run nsenter --net="$(rt_netns "$id")" nft list ruleset
  assert_output ""
  run rt_connect plain 1000 "$RT_DEST" "$RT_DENIED_PORT"
  assert_success
  jq -e --arg id "$id" 'select(.verb == "ADD" and .containerId == $id) | .outcome == "unfenced"' "$EF_LOGFILE"
}

@test "CRI: a bad proxy-UID annotation (0) fails RunPodSandbox with egress-fence's message; nothing is left" {
  rt_install
  # containerd names its netns cni-<uuid>; other suites name theirs otherwise.
  local netns_before
  netns_before="$(ip netns list | awk '$1 ~ /^cni-/ {print $1}' | sort)"
  run rt_pod bad openshell --annotation openshell.ai/cni=enabled --annotation openshell.ai/proxy-uid=0
  assert_failure 200
  assert_output --partial "RunPodSandbox"
  assert_output --partial "openshell.ai/proxy-uid"
  # No sandbox, no netns, no address kept, no veth on the bridge.
  run rt_cri list-pods
  assert_output ""
  [ "$(ip netns list | awk '$1 ~ /^cni-/ {print $1}' | sort)" = "$netns_before" ]
  [ -z "$(find "$EF_TMP/ipam" -type f -name '10.*')" ]
  [ -z "$(ip -o link show master "$EF_BRIDGE")" ]
}

@test "CRI: StopPodSandbox and RemovePodSandbox remove the fence, the netns, the address and the sandbox" {
  rt_install
  local id netns ip
  id="$(rt_pod agent sandboxes)"
  netns="$(rt_netns "$id")"
  ip="$(rt_cri pod-status "$id" | jq -r '.ip')"
  [ -n "$(rt_fence_tables "$netns")" ]
  [ -f "$EF_TMP/ipam/$EF_NET/$ip" ]
  [ -n "$(ip -o link show master "$EF_BRIDGE")" ]
  run rt_cri stop-pod "$id"
  assert_success
  [ ! -e "$netns" ]
  [ ! -f "$EF_TMP/ipam/$EF_NET/$ip" ]
  [ -z "$(ip -o link show master "$EF_BRIDGE")" ]
  jq -e --arg id "$id" 'select(.verb == "DEL" and .containerId == $id)' "$EF_LOGFILE"
  run rt_cri remove-pod "$id"
  assert_success
  run rt_cri list-pods
  assert_output ""
  run -0 findmnt -rn -o TARGET
  refute_output --partial "$id"
  [ -z "$(rt_pids_with "$id")" ]
}

# --- the runtime's own behaviour ----------------------------------------------------------

@test "runtime: the owned conflist keeps fencing when the primary rewrites its file; the restarted main container refreshes it" {
  rt_install
  rt_world
  # The primary CNI restarts and rewrites its file (temp + rename), with a change.
  rt_write_primary '.plugins[0].mtu = 1400'
  rt_wait_fence_loaded present
  local id
  id="$(rt_pod agent sandboxes)"
  [ -n "$(rt_fence_tables "$(rt_netns "$id")")" ]
  run rt_connect agent 1000 "$RT_DEST" "$RT_DENIED_PORT"
  assert_failure 111
  # verify (the liveness probe) reports the drift ...
  run rt_probe "$EF_TMP/chart" liveness
  assert_failure
  assert_output --partial "10-$EF_NET.conflist"
  # ... kubelet restarts the main container, whose command installs again.
  rt_restart_main
  for _ in $(seq 1 100); do
    if rt_probe "$EF_TMP/chart" liveness >/dev/null 2>&1; then break; fi
    sleep 0.1
  done
  run rt_probe "$EF_TMP/chart" liveness
  assert_success
  jq -e '.plugins[0].mtu == 1400 and .plugins[-1].type == "egress-fence"' "$RT_OWNED"
  id="$(rt_pod agent2 sandboxes)"
  [ -n "$(rt_fence_tables "$(rt_netns "$id")")" ]
  [ "$(nsenter --net="$(rt_netns "$id")" ip -o link show eth0 | grep -o 'mtu [0-9]*')" = "mtu 1400" ]
}

@test "runtime: liveness verify fails when the conflist is deleted; the main container's re-run install repairs it" {
  rt_install
  run rt_probe "$EF_TMP/chart" liveness
  assert_success
  rm "$RT_OWNED"
  rt_wait_fence_loaded absent
  run rt_probe "$EF_TMP/chart" liveness
  assert_failure
  assert_output --partial "00-egress-fence.conflist"
  run rt_probe "$EF_TMP/chart" readiness
  assert_failure
  # failureThreshold reached: kubelet restarts the container (not the pod).
  rt_restart_main
  rt_wait_fence_loaded present
  run rt_probe "$EF_TMP/chart" liveness
  assert_success
  local id
  id="$(rt_pod agent sandboxes)"
  [ -n "$(rt_fence_tables "$(rt_netns "$id")")" ]
}

@test "runtime: an image upgrade (v1 -> v2 bundle) while sandboxes are created in a loop fails none of them" {
  rt_install
  local v1_dir
  v1_dir="$(readlink "$RT_BIN/egress-fence.d")"
  # Sandboxes one after another, each checked fenced and removed, until told to stop.
  (
    n=0
    while [ ! -e "$EF_TMP/upgrade-done" ] || [ "$n" -lt 3 ]; do
      n=$((n + 1))
      if ! id="$(rt_pod "loop-$n" sandboxes 2>>"$EF_TMP/loop.err")"; then
        echo "pod $n: RunPodSandbox failed" >>"$EF_TMP/loop.fail"
        continue
      fi
      netns="$(rt_netns "$id")"
      [ "$(rt_fence_tables "$netns" | wc -l)" -eq 2 ] || echo "pod $n: not fenced" >>"$EF_TMP/loop.fail"
      rt_cri stop-pod "$id" >/dev/null 2>>"$EF_TMP/loop.err" || echo "pod $n: stop failed" >>"$EF_TMP/loop.fail"
      rt_cri remove-pod "$id" >/dev/null 2>>"$EF_TMP/loop.err" || echo "pod $n: remove failed" >>"$EF_TMP/loop.fail"
      echo "$n" >>"$EF_TMP/loop.done"
      [ "$n" -lt 400 ] || break
    done
  ) 3>&- &
  local loop=$!
  for _ in $(seq 1 200); do
    if [ -s "$EF_TMP/loop.done" ]; then break; fi
    sleep 0.05
  done
  [ -s "$EF_TMP/loop.done" ] || fail "no sandbox of the loop was done within 10 s"
  local started
  started="$(wc -l <"$EF_TMP/loop.done")"
  # The rolling update: the DaemonSet's pod replaced by one with the v2 image.
  rt_render "$EF_TMP/chart-v2" "$RT_VERSION-v2"
  rt_play "$EF_TMP/chart-v2" --replace
  run rt_probe "$EF_TMP/chart-v2" readiness
  assert_success
  : >"$EF_TMP/upgrade-done"
  wait "$loop"
  local total
  total="$(wc -l <"$EF_TMP/loop.done")"
  echo "sandboxes: $total, $started before the upgrade started" >&3
  [ ! -s "$EF_TMP/loop.fail" ] || { cat "$EF_TMP/loop.fail" "$EF_TMP/loop.err"; false; }
  [ "$total" -gt "$started" ]
  # v2 is what the runtime runs now; the old version's dir was kept for processes that had resolved it.
  [ "$(readlink "$RT_BIN/egress-fence.d")" != "$v1_dir" ]
  cmp "$RT_BIN/egress-fence.d/egress-fence.real" "$RT_FILE/bundle-v2/egress-fence.d/egress-fence.real"
  [ "$(rt_podman inspect --format '{{.ImageName}}' "$RT_MAIN")" = "$RT_IMAGE:$RT_VERSION-v2" ]
}

@test "runtime: containerd restarted with fenced sandboxes running keeps them fenced and tears them down cleanly" {
  rt_install
  rt_world
  local id netns ip
  id="$(rt_pod agent sandboxes)"
  netns="$(rt_netns "$id")"
  ip="$(rt_cri pod-status "$id" | jq -r '.ip')"
  rt_container agent sleeper 1000 -- /efprobe listen tcp 127.0.0.1 7 >/dev/null
  rt_containerd_stop
  # Without containerd the sandbox lives on, still fenced.
  [ -n "$(rt_fence_tables "$netns")" ]
  rt_containerd_start
  run rt_cri pod-status "$id"
  assert_success
  jq -e '.state == "SANDBOX_READY"' <<<"$output"
  [ "$(jq -r '.netns' <<<"$output")" = "$netns" ]
  run rt_fence_tables "$netns"
  assert_line "table inet egress_fence"
  assert_line "table netdev egress_fence"
  run rt_connect agent 1000 "$RT_DEST" "$RT_DENIED_PORT"
  assert_failure 111
  run rt_connect agent "$EF_PROXY_UID" "$RT_DEST" "$RT_DENIED_PORT"
  assert_success
  # Torn down by the restarted containerd: DEL ran, nothing of the pod is left.
  rt_cri stop-pod "$id"
  rt_cri remove-pod "$id"
  [ ! -e "$netns" ]
  [ ! -f "$EF_TMP/ipam/$EF_NET/$ip" ]
  jq -e --arg id "$id" 'select(.verb == "DEL" and .containerId == $id)' "$EF_LOGFILE"
  [ -z "$(rt_pids_with "$id")" ]
}

@test "runtime: the suite's teardown leaves no process, mount, netns, link or sandbox behind" {
  rt_install
  rt_world
  local id netns
  id="$(rt_pod agent sandboxes)"
  netns="$(rt_netns "$id")"
  rt_container agent sleeper 1000 -- /efprobe listen tcp 127.0.0.1 7 >/dev/null
  local world_netns
  world_netns="$(rt_netns "$(cat "$EF_TMP/pods/world.id")")"
  local sock="$RT_SOCK" tmp="$EF_TMP" bridge="$EF_BRIDGE" cgroup="$RT_CGROUP"
  ef_teardown
  [ ! -d "$tmp" ]
  [ -z "$(rt_pids_with "$tmp")" ]
  [ -z "$(rt_pids_with "$sock")" ]
  run -0 findmnt -rn -o TARGET
  refute_output --partial "$tmp"
  run -0 cat /proc/mounts
  refute_output --partial "$tmp"
  [ ! -e "$netns" ] || fail "the pod's netns $netns is left"
  [ ! -e "$world_netns" ] || fail "the world's netns $world_netns is left"
  run -0 ip netns list
  refute_output --partial "${netns##*/}"
  run -0 ip -o link show
  refute_output --partial "$bridge"
  run compgen -G "/sys/fs/cgroup/*/$cgroup"
  assert_output ""
  [ ! -e "/sys/fs/cgroup/$cgroup" ] || fail "cgroup /sys/fs/cgroup/$cgroup is left"
  run rt_podman pod ps --quiet
  assert_output ""
}
