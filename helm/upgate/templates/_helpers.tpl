{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "upgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Resource name prefix: "<release>-<chart>", or the release name if it already contains the chart name. */}}
{{- define "upgate.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "upgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: fixed for the life of a release (Deployment selectors are immutable). */}}
{{- define "upgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "upgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "upgate.labels" -}}
helm.sh/chart: {{ include "upgate.chart" . }}
{{ include "upgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: upgate
{{- end }}

{{- define "upgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "upgate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "upgate.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- if .Values.image.digest -}}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end }}

{{/* Scheme of the S3 listener, for probes and the test pod. */}}
{{- define "upgate.scheme" -}}
{{- if .Values.tls.enabled }}HTTPS{{ else }}HTTP{{ end }}
{{- end }}

{{/* Paths inside the container. The image uses the same ones. */}}
{{- define "upgate.dataDir" -}}/var/lib/upgate{{- end }}
{{- define "upgate.configDir" -}}/etc/upgate{{- end }}
{{- define "upgate.tlsDir" -}}/etc/upgate-tls{{- end }}

{{/* True ("true") when more than one pod can run at once: then all state must be shared. */}}
{{- define "upgate.multiReplica" -}}
{{- if or .Values.autoscaling.enabled (gt (int .Values.replicaCount) 1) }}true{{ end }}
{{- end }}

{{/*
Render-time checks: combinations that would deploy but lose or split data, or cut uploads.
Included from the Deployment so `helm lint` / `helm template` fail with the reason.
*/}}
{{- define "upgate.validate" -}}
{{- $backend := .Values.storage.backend -}}
{{- if not (has $backend (list "local" "s3")) }}
{{- fail (printf "storage.backend must be \"local\" or \"s3\", not %q" $backend) }}
{{- end }}
{{- if and (eq $backend "s3") (not .Values.storage.s3.bucket) }}
{{- fail "storage.backend \"s3\" needs storage.s3.bucket" }}
{{- end }}
{{- if include "upgate.multiReplica" . }}
{{- if ne $backend "s3" }}
{{- fail "more than one replica (replicaCount > 1 or autoscaling.enabled) needs storage.backend \"s3\": with \"local\" every pod has its own objects" }}
{{- end }}
{{- if not .Values.database.existingSecret }}
{{- fail "more than one replica (replicaCount > 1 or autoscaling.enabled) needs PostgreSQL or MySQL: set database.existingSecret (SQLite is per pod)" }}
{{- end }}
{{- if not .Values.rootCredentials.existingSecret }}
{{- fail "more than one replica (replicaCount > 1 or autoscaling.enabled) needs rootCredentials.existingSecret: generated credentials differ per pod" }}
{{- end }}
{{- end }}
{{- if and .Values.tls.enabled (not .Values.tls.existingSecret) }}
{{- fail "tls.enabled needs tls.existingSecret (a kubernetes.io/tls Secret)" }}
{{- end }}
{{- $drain := add (int .Values.preStopSleepSeconds) (int .Values.shutdownGraceSeconds) -}}
{{- if le (int .Values.terminationGracePeriodSeconds) $drain }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must exceed preStopSleepSeconds + shutdownGraceSeconds (%d), or draining uploads are killed" (int .Values.terminationGracePeriodSeconds) $drain) }}
{{- end }}
{{- if and .Values.autoscaling.enabled (lt (int .Values.autoscaling.maxReplicas) (int .Values.autoscaling.minReplicas)) }}
{{- fail "autoscaling.maxReplicas must be at least autoscaling.minReplicas" }}
{{- end }}
{{- if not (has .Values.log.format (list "json" "text")) }}
{{- fail (printf "log.format must be \"json\" or \"text\", not %q" .Values.log.format) }}
{{- end }}
{{- end }}
