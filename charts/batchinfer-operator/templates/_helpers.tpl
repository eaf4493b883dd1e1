{{/* Chart name, overridable. */}}
{{- define "batchinfer.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Object name prefix: the release name, unless it already contains the chart name. */}}
{{- define "batchinfer.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := include "batchinfer.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "batchinfer.selectorLabels" -}}
app.kubernetes.io/name: {{ include "batchinfer.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "batchinfer.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{ include "batchinfer.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: batchinfer
{{- end }}

{{- define "batchinfer.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "batchinfer.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "batchinfer.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "batchinfer.liveness" -}}
{{- printf "http://0.0.0.0:%d/healthz" (int .Values.healthPort) }}
{{- end }}

{{/*
What the operator does inside a served namespace: its own resources and their status,
the Jobs it creates, read-only Pods (shard summaries sit in their termination
messages), and Events. No Secrets: worker pods mount the Secret a resource names.
*/}}
{{- define "batchinfer.namespacedRules" -}}
- apiGroups: [batchinfer.io]
  resources: [batchinferences]
  verbs: [get, list, watch, patch, update]
- apiGroups: [batchinfer.io]
  resources: [batchinferences/status]
  verbs: [patch, update]
# Our Jobs set blockOwnerDeletion (a foreground delete of a run waits for its Jobs); where
# OwnerReferencesPermissionEnforcement is on (OpenShift's default) that needs this grant.
- apiGroups: [batchinfer.io]
  resources: [batchinferences/finalizers]
  verbs: [update]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, patch]
# Pods are only listed (their status says how each shard ended), never fetched one by one.
- apiGroups: [""]
  resources: [pods]
  verbs: [list]
# Events: ours about each run, and the Job controller's FailedCreate (pods the API refused).
- apiGroups: [""]
  resources: [events]
  verbs: [create, list]
{{- end }}

{{/* kopf scans CRDs at start and watches them to notice the CRD being (re)installed. */}}
{{- define "batchinfer.clusterRules" -}}
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
{{- end }}

{{/* The labels the operator puts on every worker pod (batchinfer_operator/names.py run_labels). */}}
{{- define "batchinfer.workerSelectorLabels" -}}
app.kubernetes.io/name: batchinfer-worker
app.kubernetes.io/managed-by: batchinfer-operator
{{- end }}
