{{/* Host paths per platform preset. */}}
{{- define "egress-fence.preset" -}}
{{- $presets := dict
  "generic"   (dict "binDir" "/opt/cni/bin" "confDir" "/etc/cni/net.d")
  "k3s"       (dict "binDir" "/var/lib/rancher/k3s/data/cni" "confDir" "/var/lib/rancher/k3s/agent/etc/cni/net.d")
  "microk8s"  (dict "binDir" "/var/snap/microk8s/current/opt/cni/bin" "confDir" "/var/snap/microk8s/current/args/cni-network")
  "openshift" (dict "binDir" "/var/lib/cni/bin" "confDir" "/etc/kubernetes/cni/net.d" "seLinuxType" "spc_t")
  "gke"       (dict "binDir" "/home/kubernetes/bin" "confDir" "/etc/cni/net.d")
-}}
{{- toJson (get $presets .Values.platform) -}}
{{- end -}}

{{- define "egress-fence.binDir" -}}
{{- .Values.cni.binDir | default (include "egress-fence.preset" . | fromJson).binDir -}}
{{- end -}}

{{- define "egress-fence.confDir" -}}
{{- .Values.cni.confDir | default (include "egress-fence.preset" . | fromJson).confDir -}}
{{- end -}}

{{- define "egress-fence.seLinuxType" -}}
{{- .Values.seLinuxType | default (include "egress-fence.preset" . | fromJson).seLinuxType | default "" -}}
{{- end -}}

{{- define "egress-fence.name" -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "egress-fence.labels" -}}
app.kubernetes.io/name: egress-fence
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "egress-fence.selectorLabels" -}}
app.kubernetes.io/name: egress-fence
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The egress-fence entry as JSON. */}}
{{- define "egress-fence.pluginConfig" -}}
{{- $c := .Values.pluginConfig -}}
{{- $entry := dict "type" "egress-fence" "capabilities" (dict "io.kubernetes.cri.pod-annotations" true) "logLevel" $c.logLevel "profileAnnotation" $c.profileAnnotation "selectors" $c.selectors "profiles" $c.profiles -}}
{{- if $c.logFile }}{{ $_ := set $entry "logFile" $c.logFile }}{{ end -}}
{{- toPrettyJson $entry -}}
{{- end -}}

{{/* Paths inside the container. */}}
{{- define "egress-fence.ctl" -}}/opt/egress-fence/bin/egress-fence-ctl{{- end -}}
{{- define "egress-fence.hostBin" -}}/host/cni/bin{{- end -}}
{{- define "egress-fence.hostConf" -}}/host/cni/net.d{{- end -}}
{{- define "egress-fence.uninstallArgs" -}}
- uninstall
- --cni-bin-dir={{ include "egress-fence.hostBin" . }}
- --cni-conf-dir={{ include "egress-fence.hostConf" . }}
- --netns-dir=/run/netns
{{- end -}}
{{- define "egress-fence.configFile" -}}/etc/egress-fence/config.json{{- end -}}

{{- define "egress-fence.installArgs" -}}
- install
- --cni-bin-dir={{ include "egress-fence.hostBin" . }}
- --cni-conf-dir={{ include "egress-fence.hostConf" . }}
- --plugin-config={{ include "egress-fence.configFile" . }}
- --mode={{ .Values.cni.mode }}
- --wait-for-primary={{ .Values.cni.waitForPrimarySeconds }}
{{- if .Values.cni.skipBinDirCheck }}
- --skip-bin-dir-check
{{- end }}
{{- end -}}

{{/* The metrics server runs in the main container (values.yaml "metrics"); not while uninstalling. */}}
{{- define "egress-fence.metricsOn" -}}
{{- if and .Values.metrics.enabled (not .Values.uninstall) }}true{{ end -}}
{{- end -}}

{{/* The main container's arguments for the metrics server, after --then-pause. */}}
{{- define "egress-fence.metricsArgs" -}}
{{- if .Values.metrics.listenAddress -}}
- --metrics-listen={{ .Values.metrics.listenAddress }}
{{- else -}}
- --metrics-listen=$(POD_IP)
- --metrics-listen=127.0.0.1
{{- end }}
- --metrics-port={{ .Values.metrics.port }}
- --metrics-netns-dir=/run/netns
- --metrics-scan-timeout={{ .Values.metrics.scanTimeoutSeconds }}
{{- end -}}

{{/* The probes' request when the metrics server answers them: verify, over /healthz. */}}
{{- define "egress-fence.healthzProbe" -}}
httpGet:
  path: /healthz
  port: metrics
  {{- with .Values.metrics.listenAddress }}
  {{- if ne . "0.0.0.0" }}
  host: {{ . }}
  {{- end }}
  {{- end }}
{{- end -}}

{{/* Labels of the metrics Service, and what the ServiceMonitor selects. */}}
{{- define "egress-fence.metricsLabels" -}}
{{ include "egress-fence.selectorLabels" . }}
app.kubernetes.io/component: metrics
{{- end -}}

{{/* The monitors' relabeling: the node the target runs on becomes the node label. */}}
{{- define "egress-fence.nodeRelabeling" -}}
- sourceLabels: [__meta_kubernetes_pod_node_name]
  targetLabel: node
  action: replace
{{- end -}}

{{/* securityContext of a container: (dict "root" $ "main" true) for the main container. */}}
{{- define "egress-fence.securityContext" -}}
{{- $root := .root -}}
# root for the host's root-owned CNI dirs; nothing else.
runAsUser: 0
runAsGroup: 0
runAsNonRoot: false
privileged: false
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
  {{- /* uninstall reads every pod netns's tables: setns needs SYS_ADMIN, nf_tables NET_ADMIN */}}
  {{- $caps := $root.Values.extraCapabilities | default list }}
  {{- if $root.Values.uninstall }}{{ $caps = concat $caps (list "NET_ADMIN" "SYS_ADMIN") }}{{ end }}
  {{- /* the metrics server reads them at every scrape, and forks its HTTP side off as uid/gid 65534 */}}
  {{- if and .main (include "egress-fence.metricsOn" $root) }}{{ $caps = concat $caps (list "NET_ADMIN" "SYS_ADMIN" "SETUID" "SETGID") }}{{ end }}
  {{- with $caps }}
  add: {{ toJson . }}
  {{- end }}
seccompProfile:
  type: RuntimeDefault
{{- with include "egress-fence.seLinuxType" $root }}
seLinuxOptions:
  type: {{ . }}
{{- end }}
{{- end -}}

{{/* An alert's runbook, in its description: (list .Values.metrics.rules "EgressFenceX"). */}}
{{- define "egress-fence.runbookText" -}}
Runbook: egress-fence docs/operating.md, "Alerts and their runbooks", {{ index . 1 }}.
{{- end -}}

{{/* runbook_url when metrics.rules.runbookBaseUrl is set: (list .Values.metrics.rules "EgressFenceX"). */}}
{{- define "egress-fence.runbookUrl" -}}
{{- with (index . 0).runbookBaseUrl -}}
runbook_url: {{ printf "%s#%s" . (lower (index $ 1)) }}
{{- end -}}
{{- end -}}
