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

{{- define "egress-fence.securityContext" -}}
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
  {{- $caps := .Values.extraCapabilities | default list }}
  {{- if .Values.uninstall }}{{ $caps = concat $caps (list "NET_ADMIN" "SYS_ADMIN") }}{{ end }}
  {{- with $caps }}
  add: {{ toJson . }}
  {{- end }}
seccompProfile:
  type: RuntimeDefault
{{- with include "egress-fence.seLinuxType" . }}
seLinuxOptions:
  type: {{ . }}
{{- end }}
{{- end -}}
