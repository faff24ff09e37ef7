{{/*
CEL for the optional admission policy (admission-policy.yaml). Only standard
CEL is used, which both Kubernetes and the offline evaluator the tests run
(@bufbuild/cel) implement: has(), the all/exists/filter/map macros, `in`,
size(), string(), matches() (RE2), + on strings and lists, ?:. No Kubernetes
extension library (no optionals, no string or list extensions).
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
(has(object.metadata.annotations) && {{ include "egress-fence.celString" . }} in object.metadata.annotations)
{{- end -}}

{{/*
Whether a plugin selector could pick the pod: its namespaces (globs, against
the request's namespace) and annotations (exact) as the plugin matches them.
The policy applies when any selector matches (first-match order only decides
which profile, not whether the pod is fenced).
*/}}
{{- define "egress-fence.celSelected" -}}
{{- $any := list -}}
{{- range $s := .Values.pluginConfig.selectors -}}
{{- $all := list -}}
{{- with $s.namespaces -}}
{{- $alts := list -}}
{{- range $g := . }}{{ $alts = append $alts (include "egress-fence.globRegex" $g) }}{{ end -}}
{{- $all = append $all (printf "request.namespace.matches(%s)" (include "egress-fence.celString" (printf "^(?:%s)$" (join "|" $alts)))) -}}
{{- end -}}
{{- range $k, $v := $s.annotations -}}
{{- $all = append $all (printf "(%s && object.metadata.annotations[%s] == %s)" (include "egress-fence.celHasAnnotation" $k) (include "egress-fence.celString" $k) (include "egress-fence.celString" $v)) -}}
{{- end -}}
{{- if $all }}{{ $any = append $any (printf "(%s)" (join " && " $all)) }}{{ end -}}
{{- end -}}
{{- if $any }}{{ join " || " $any }}{{ else }}false{{ end -}}
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
CEL predicate `.ok` (on `c`) is false. `.okEphemeral` replaces it for
ephemeral containers (which can never be the proxy).
*/}}
{{- define "egress-fence.celOffenders" -}}
{{- $ok := .ok -}}
{{- $eph := .okEphemeral | default .ok -}}
object.spec.containers.filter(c, !({{ $ok }})).map(c, c.name) + (has(object.spec.initContainers) ? object.spec.initContainers.filter(c, !({{ $ok }})).map(c, c.name) : []) + (has(object.spec.ephemeralContainers) ? object.spec.ephemeralContainers.filter(c, !({{ $eph }})).map(c, c.name) : [])
{{- end -}}

{{/* A container's securityContext field F is set. */}}
{{- define "egress-fence.celScHas" -}}
(has(c.securityContext) && has(c.securityContext.{{ . }}))
{{- end -}}
