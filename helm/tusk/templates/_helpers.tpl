{{/* Chart name. */}}
{{- define "tusk.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart, unless the release name already contains the chart name. */}}
{{- define "tusk.fullname" -}}
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

{{- define "tusk.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tusk.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tusk.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tusk.labels" -}}
helm.sh/chart: {{ include "tusk.chart" . }}
{{ include "tusk.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "tusk.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tusk.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Seconds between SIGTERM's start of the drain and SIGKILL must exceed shutdown_timeout. */}}
{{- define "tusk.terminationGracePeriodSeconds" -}}
{{- add .Values.config.shutdownTimeoutSeconds .Values.lifecycle.preStopSleepSeconds 15 }}
{{- end }}

{{/* Refuse configurations that would lose uploads. */}}
{{- define "tusk.validate" -}}
{{- $multi := or (gt (int .Values.replicaCount) 1) .Values.autoscaling.enabled }}
{{- if and $multi (not .Values.s3.bucket) }}
{{- fail "more than one replica (or autoscaling) needs distributed mode: set s3.bucket, redis.existingSecret and etcd.endpoints" }}
{{- end }}
{{- if and $multi (not .Values.etcd.endpoints) }}
{{- fail "more than one replica (or autoscaling) needs etcd.endpoints: in-process locks are per node" }}
{{- end }}
{{- if and .Values.s3.bucket (not .Values.redis.existingSecret) }}
{{- fail "s3.bucket needs redis.existingSecret (a Secret holding the Redis URL)" }}
{{- end }}
{{- if and .Values.etcd.existingSecret (not .Values.etcd.user) }}
{{- fail "etcd.existingSecret (password) needs etcd.user" }}
{{- end }}
{{- end }}
