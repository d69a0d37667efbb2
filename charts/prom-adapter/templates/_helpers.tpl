{{- define "prom-adapter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "prom-adapter.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "prom-adapter.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride -}}
{{- end -}}

{{- define "prom-adapter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "prom-adapter.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "prom-adapter.labels" -}}
app.kubernetes.io/name: {{ include "prom-adapter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- with .Values.customLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
An object's `annotations:` block: customAnnotations (on every object, as the community chart
does) and the object's own (`extra`), or nothing. Call with (dict "root" $ "extra" …).
*/}}
{{- define "prom-adapter.annotations" -}}
{{- $all := merge (dict) (.extra | default dict) (.root.Values.customAnnotations | default dict) -}}
{{- with $all -}}
annotations:
{{ toYaml . | indent 2 }}
{{- end -}}
{{- end -}}

{{- define "prom-adapter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "prom-adapter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Which APIs the rules switch on. */}}
{{- define "prom-adapter.customMetrics" -}}
{{- if or .Values.rules.default .Values.rules.custom .Values.rules.existing }}true{{ end -}}
{{- end -}}
{{- define "prom-adapter.externalMetrics" -}}
{{- if or .Values.rules.external .Values.rules.existing }}true{{ end -}}
{{- end -}}
{{- define "prom-adapter.resourceMetrics" -}}
{{- if .Values.rules.resource }}true{{ end -}}
{{- end -}}

{{/*
The serving certificate and its CA as a dict {ca, cert, key}: the user's (tls.enable), or the
ones a previous release generated (kept across upgrades), or new ones.
*/}}
{{- define "prom-adapter.certificates" -}}
{{- $fullname := include "prom-adapter.fullname" . -}}
{{- $namespace := include "prom-adapter.namespace" . -}}
{{- if .Values.tls.enable -}}
{{- if not (and .Values.tls.ca .Values.tls.certificate .Values.tls.key) -}}
{{- fail "tls.enable is true but tls.ca, tls.certificate and tls.key are not all set: give the serving certificate, its key and the CA that signed it (PEM), or leave tls.enable false and the chart generates them (or set certManager.enabled)" -}}
{{- end -}}
{{- dict "ca" .Values.tls.ca "cert" .Values.tls.certificate "key" .Values.tls.key | toJson -}}
{{- else -}}
{{- $secret := lookup "v1" "Secret" $namespace (printf "%s-tls" $fullname) -}}
{{- if and $secret (index $secret.data "ca.crt") -}}
{{- dict "ca" (index $secret.data "ca.crt" | b64dec) "cert" (index $secret.data "tls.crt" | b64dec) "key" (index $secret.data "tls.key" | b64dec) | toJson -}}
{{- else -}}
{{- $service := printf "%s.%s.svc" $fullname $namespace -}}
{{- $ca := genCA (printf "%s-ca" $fullname) 3650 -}}
{{- $cert := genSignedCert $service nil (list $service (printf "%s.%s" $fullname $namespace) $fullname) 3650 $ca -}}
{{- dict "ca" $ca.Cert "cert" $cert.Cert "key" $cert.Key | toJson -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The plural of a lowercase resource name as a rule may write it ("ingress", "pods", "policy"),
the way kube's RESTMapper guesses it.
*/}}
{{- define "prom-adapter.plural" -}}
{{- if hasSuffix "ss" . }}{{ . }}es
{{- else if hasSuffix "s" . }}{{ . }}
{{- else if or (hasSuffix "ch" .) (hasSuffix "sh" .) (hasSuffix "x" .) }}{{ . }}es
{{- else if regexMatch "[^aeiou]y$" . }}{{ trimSuffix "y" . }}ies
{{- else }}{{ . }}s
{{- end -}}
{{- end -}}

{{/*
The resources the adapter lists by label selector beyond the core ones it always reads, as JSON
{group: [plural, ...]}: every `resources.overrides` target of rules.custom and rules.external,
plus rbac.listResources. An override without a group resolves as the adapter does for the
well-known workload resources, and to the core group otherwise.
*/}}
{{- define "prom-adapter.listedResources" -}}
{{- $wellKnown := dict "ingress" "networking.k8s.io" "ingresses" "networking.k8s.io" "networkpolicy" "networking.k8s.io" "networkpolicies" "networking.k8s.io" "deployment" "apps" "deployments" "apps" "replicaset" "apps" "replicasets" "apps" "statefulset" "apps" "statefulsets" "apps" "daemonset" "apps" "daemonsets" "apps" "job" "batch" "jobs" "batch" "cronjob" "batch" "cronjobs" "batch" "horizontalpodautoscaler" "autoscaling" "horizontalpodautoscalers" "autoscaling" -}}
{{- $targets := list -}}
{{- range $rule := concat (.Values.rules.custom | default list) (.Values.rules.external | default list) -}}
{{- range $label, $target := (($rule.resources | default dict).overrides | default dict) -}}
{{- $targets = append $targets $target -}}
{{- end -}}
{{- end -}}
{{- $targets = concat $targets (.Values.rbac.listResources | default list) -}}
{{- $groups := dict -}}
{{- range $targets -}}
{{- $name := lower (toString (.resource | default "")) -}}
{{- if $name -}}
{{- $group := .group | default (get $wellKnown $name) | default "" -}}
{{- $plural := include "prom-adapter.plural" $name -}}
{{- $_ := set $groups $group (append (get $groups $group | default list) $plural | uniq | sortAlpha) -}}
{{- end -}}
{{- end -}}
{{- toJson $groups -}}
{{- end -}}
