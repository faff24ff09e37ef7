{{/*
CEL for the optional admission policy (admission-policy.yaml). Only standard
CEL is used, which both Kubernetes and the offline evaluator the tests run
(@bufbuild/cel) implement: has(), the all/exists/filter/map macros, `in`,
size(), string(), matches() (RE2), + on strings and lists, == and != on lists
and against null, ?:. No Kubernetes extension library (no optionals, no string
or list extensions).
*/}}

{{/* A CEL string literal: Go's %q escapes are valid CEL escapes. */}}
{{- define "egress-fence.celString" -}}
{{- printf "%q" . -}}
{{- end -}}

{{/* A namespace glob (`*`, `?`) as an anchored RE2 pattern. */}}
{{- define "egress-fence.globRegex" -}}
{{- $out := "" -}}
{{- range $ch := splitList "" . -}}
{{- if eq $ch "*" }}{{ $out = print $out ".*" }}{{ else if eq $ch "?" }}{{ $out = print $out "." }}{{ else }}{{ $out = print $out (regexQuoteMeta $ch) }}{{ end -}}
{{- end -}}
{{- $out -}}
{{- end -}}

{{/* `object.metadata.annotations[KEY]` exists. */}}
{{- define "egress-fence.celHasAnnotation" -}}
{{- include "egress-fence.celHasAnnotationOf" (dict "obj" "object" "key" .) -}}
{{- end -}}

{{/* `.obj.metadata.annotations[.key]` exists (.obj: object or oldObject). */}}
{{- define "egress-fence.celHasAnnotationOf" -}}
(has({{ .obj }}.metadata.annotations) && {{ include "egress-fence.celString" .key }} in {{ .obj }}.metadata.annotations)
{{- end -}}

{{/*
Whether a plugin selector could pick the pod in `.obj` (object or oldObject):
its namespaces (globs, against the request's namespace) and annotations
(exact) as the plugin matches them. The policy applies when any selector
matches (first-match order only decides which profile, not whether the pod is
fenced). Called with the root context as `.root`.
*/}}
{{- define "egress-fence.celSelectedOf" -}}
{{- $obj := .obj -}}
{{- $any := list -}}
{{- range $s := .root.Values.pluginConfig.selectors -}}
{{- $all := list -}}
{{- with $s.namespaces -}}
{{- $alts := list -}}
{{- range $g := . }}{{ $alts = append $alts (include "egress-fence.globRegex" $g) }}{{ end -}}
{{- $all = append $all (printf "request.namespace.matches(%s)" (include "egress-fence.celString" (printf "^(?:%s)$" (join "|" $alts)))) -}}
{{- end -}}
{{- range $k, $v := $s.annotations -}}
{{- $all = append $all (printf "(%s && %s.metadata.annotations[%s] == %s)" (include "egress-fence.celHasAnnotationOf" (dict "obj" $obj "key" $k)) $obj (include "egress-fence.celString" $k) (include "egress-fence.celString" $v)) -}}
{{- end -}}
{{- if $all }}{{ $any = append $any (printf "(%s)" (join " && " $all)) }}{{ end -}}
{{- end -}}
{{- if $any }}{{ join " || " $any }}{{ else }}false{{ end -}}
{{- end -}}

{{/* Whether a selector picks the new pod (`object`). */}}
{{- define "egress-fence.celSelected" -}}
{{- include "egress-fence.celSelectedOf" (dict "root" . "obj" "object") -}}
{{- end -}}

{{/*
Every annotation key whose value decides how the plugin fences a pod, or which
container the policy lets run as an exempt UID, once each, sorted, as a JSON
array: every selector's annotation keys, exemptUidAnnotation and
contractVersion.annotation, the profile annotation (the plugin's default when
unset) and the proxy-container annotation.
*/}}
{{- define "egress-fence.fenceAnnotations" -}}
{{- $keys := list (default "egress-fence.io/profile" .Values.pluginConfig.profileAnnotation) -}}
{{- with .Values.admissionPolicy.proxyContainerAnnotation }}{{ $keys = append $keys . }}{{ end -}}
{{- range $s := .Values.pluginConfig.selectors -}}
{{- range $k, $v := $s.annotations }}{{ $keys = append $keys $k }}{{ end -}}
{{- with $s.exemptUidAnnotation }}{{ $keys = append $keys . }}{{ end -}}
{{- with $s.contractVersion }}{{ with .annotation }}{{ $keys = append $keys . }}{{ end }}{{ end -}}
{{- end -}}
{{- toJson (uniq $keys | sortAlpha) -}}
{{- end -}}

{{/* A CEL list of the strings in the JSON array `.`. */}}
{{- define "egress-fence.celStringList" -}}
{{- $items := list -}}
{{- range $s := (. | fromJsonArray) }}{{ $items = append $items (include "egress-fence.celString" $s) }}{{ end -}}
[{{ join ", " $items }}]
{{- end -}}

{{/*
The value of annotation `k` (a CEL variable) on `.` (object or oldObject) as a
list: [value], or [] when absent, so that absent and present compare unequal.
*/}}
{{- define "egress-fence.celAnnotationValue" -}}
(has({{ . }}.metadata.annotations) && k in {{ . }}.metadata.annotations ? [{{ . }}.metadata.annotations[k]] : [])
{{- end -}}

{{/* The static exempt UIDs of every profile, as CEL strings. */}}
{{- define "egress-fence.celExemptUids" -}}
{{- $uids := list -}}
{{- range $name, $p := .Values.pluginConfig.profiles -}}
{{- range $u := (default list $p.exemptUids) }}{{ $uids = append $uids (include "egress-fence.celString" (toString $u)) }}{{ end -}}
{{- end -}}
[{{ join ", " (uniq $uids) }}]
{{- range $key := (include "egress-fence.uidAnnotations" . | fromJsonArray) }} + ({{ include "egress-fence.celHasAnnotation" $key }} ? [object.metadata.annotations[{{ include "egress-fence.celString" $key }}]] : []){{ end -}}
{{- end -}}

{{/* The selectors' exemptUidAnnotation keys, once each, as a JSON array. */}}
{{- define "egress-fence.uidAnnotations" -}}
{{- $keys := list -}}
{{- range $s := .Values.pluginConfig.selectors }}{{ with $s.exemptUidAnnotation }}{{ $keys = append $keys . }}{{ end }}{{ end -}}
{{- toJson (uniq $keys) -}}
{{- end -}}

{{/*
The names of the pod's containers (regular, init, ephemeral) for which the
CEL predicate `.ok` (on `c`) is false; none when the request is not one whose
spec the policy checks (variables.checksSpec). `.okEphemeral` replaces it for
ephemeral containers (which can never be the proxy).
*/}}
{{- define "egress-fence.celOffenders" -}}
{{- $ok := .ok -}}
{{- $eph := .okEphemeral | default .ok -}}
!variables.checksSpec ? [] : object.spec.containers.filter(c, !({{ $ok }})).map(c, c.name) + (has(object.spec.initContainers) ? object.spec.initContainers.filter(c, !({{ $ok }})).map(c, c.name) : []) + (has(object.spec.ephemeralContainers) ? object.spec.ephemeralContainers.filter(c, !({{ $eph }})).map(c, c.name) : [])
{{- end -}}

{{/* A container's securityContext field F is set. */}}
{{- define "egress-fence.celScHas" -}}
(has(c.securityContext) && has(c.securityContext.{{ . }}))
{{- end -}}
