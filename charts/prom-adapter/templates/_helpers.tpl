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
