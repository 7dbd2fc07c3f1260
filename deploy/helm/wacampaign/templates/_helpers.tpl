{{/* Names, labels and the pieces the two Deployments share. */}}

{{- define "wacampaign.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-wide name; components add -api / -worker (so keep it under 56). */}}
{{- define "wacampaign.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 56 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 56 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 56 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "wacampaign.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "wacampaign.labels" -}}
helm.sh/chart: {{ include "wacampaign.chart" . }}
{{ include "wacampaign.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "wacampaign.selectorLabels" -}}
app.kubernetes.io/name: {{ include "wacampaign.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of one component: (dict "ctx" $ "component" "api") */}}
{{- define "wacampaign.componentLabels" -}}
{{ include "wacampaign.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "wacampaign.componentSelectorLabels" -}}
{{ include "wacampaign.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "wacampaign.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "wacampaign.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "wacampaign.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* The Secret the chart creates (only when a secret is given as a plain value). */}}
{{- define "wacampaign.secretName" -}}
{{- include "wacampaign.fullname" . }}
{{- end }}

{{/* The secret values the chart's own Secret holds, key -> value. */}}
{{- define "wacampaign.secretData" -}}
{{- $data := dict }}
{{- if and (not .Values.redis.existingSecret) .Values.redis.url }}
{{- $_ := set $data "REDIS_URL" .Values.redis.url }}
{{- end }}
{{- if and (not .Values.apiKeys.existingSecret) .Values.apiKeys.value }}
{{- $_ := set $data "API_KEYS" .Values.apiKeys.value }}
{{- end }}
{{- if and (not .Values.timelines.existingSecret) .Values.timelines.token }}
{{- $_ := set $data "TIMELINES_API_TOKEN" .Values.timelines.token }}
{{- end }}
{{- if and (not .Values.gateway.existingSecret) .Values.gateway.apiKey }}
{{- $_ := set $data "GATEWAY_API_KEY" .Values.gateway.apiKey }}
{{- end }}
{{- if and (not .Values.webhook.existingSecret) .Values.webhook.secret }}
{{- $_ := set $data "WEBHOOK_SECRET" .Values.webhook.secret }}
{{- end }}
{{- toYaml $data }}
{{- end }}

{{/*
One secret environment variable from either an existing Secret or the chart's:
(dict "ctx" $ "env" "REDIS_URL" "existing" .Values.redis.existingSecret
      "existingKey" .Values.redis.existingSecretKey "value" .Values.redis.url)
Renders nothing when neither is given.
*/}}
{{- define "wacampaign.secretEnv" -}}
{{- if .existing }}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
      name: {{ .existing }}
      key: {{ .existingKey }}
{{- else if .value }}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
      name: {{ include "wacampaign.secretName" .ctx }}
      key: {{ .env }}
{{- end }}
{{- end }}

{{/*
The env: list of one component beyond the ConfigMap (envFrom):
(dict "ctx" $ "component" "api")
*/}}
{{- define "wacampaign.env" -}}
{{- $v := .ctx.Values }}
{{- if eq .component "api" }}
- name: ADDR
  value: {{ printf "0.0.0.0:%d" (int $v.api.containerPort) | quote }}
{{- include "wacampaign.secretEnv" (dict "ctx" .ctx "env" "API_KEYS" "existing" $v.apiKeys.existingSecret "existingKey" $v.apiKeys.existingSecretKey "value" $v.apiKeys.value) }}
{{- else }}
- name: WORKER_CONCURRENCY
  value: {{ $v.worker.concurrency | quote }}
{{- end }}
{{- include "wacampaign.secretEnv" (dict "ctx" .ctx "env" "REDIS_URL" "existing" $v.redis.existingSecret "existingKey" $v.redis.existingSecretKey "value" $v.redis.url) }}
{{- include "wacampaign.secretEnv" (dict "ctx" .ctx "env" "TIMELINES_API_TOKEN" "existing" $v.timelines.existingSecret "existingKey" $v.timelines.existingSecretKey "value" $v.timelines.token) }}
{{- include "wacampaign.secretEnv" (dict "ctx" .ctx "env" "GATEWAY_API_KEY" "existing" $v.gateway.existingSecret "existingKey" $v.gateway.existingSecretKey "value" $v.gateway.apiKey) }}
{{- include "wacampaign.secretEnv" (dict "ctx" .ctx "env" "WEBHOOK_SECRET" "existing" $v.webhook.existingSecret "existingKey" $v.webhook.existingSecretKey "value" $v.webhook.secret) }}
- name: TIMELINES_BASE_URL
  value: {{ $v.timelines.baseURL | quote }}
{{- end }}

{{/*
Pod annotations that roll the pods when the chart's ConfigMaps or Secret
change. (A Secret you manage yourself is not watched: restart the
Deployments after rotating it.)
*/}}
{{- define "wacampaign.checksums" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
checksum/secret: {{ include "wacampaign.secretData" . | sha256sum }}
{{- end }}

{{/* Seconds of a Go duration written as Ns, Nm, NmMs or Nh; "" when unsure. */}}
{{- define "wacampaign.durationSeconds" -}}
{{- $d := toString . }}
{{- if regexMatch "^[0-9]+s$" $d }}
{{- trimSuffix "s" $d | atoi }}
{{- else if regexMatch "^[0-9]+m$" $d }}
{{- mul (trimSuffix "m" $d | atoi) 60 }}
{{- else if regexMatch "^[0-9]+m[0-9]+s$" $d }}
{{- $parts := regexSplit "m" (trimSuffix "s" $d) -1 }}
{{- add (mul (index $parts 0 | atoi) 60) (index $parts 1 | atoi) }}
{{- else if regexMatch "^[0-9]+h$" $d }}
{{- mul (trimSuffix "h" $d | atoi) 3600 }}
{{- end }}
{{- end }}

{{/* Mistakes the chart refuses, with a message that says what to do. */}}
{{- define "wacampaign.validate" -}}
{{- range $key := list "REDIS_URL" "API_KEYS" "TIMELINES_API_TOKEN" "GATEWAY_API_KEY" "WEBHOOK_SECRET" }}
{{- if hasKey $.Values.config $key }}
{{- fail (printf "config.%s: this is a secret and config goes into a ConfigMap; use redis.*, apiKeys.*, timelines.*, gateway.* or webhook.* (existingSecret preferred)" $key) }}
{{- end }}
{{- end }}
{{- if hasKey .Values.config "ADDR" }}
{{- fail "config.ADDR: the chart sets ADDR to 0.0.0.0:<api.containerPort>; change api.containerPort instead" }}
{{- end }}
{{- if hasKey .Values.config "WORKER_CONCURRENCY" }}
{{- fail "config.WORKER_CONCURRENCY: set worker.concurrency instead" }}
{{- end }}
{{- if hasKey .Values.config "TIMELINES_BASE_URL" }}
{{- fail "config.TIMELINES_BASE_URL: set timelines.baseURL instead" }}
{{- end }}
{{- if and .Values.autoscaling.keda.enabled .Values.autoscaling.hpa.enabled }}
{{- fail "autoscaling: enable keda or hpa, not both (KEDA makes its own HPA, and two HPAs on one Deployment fight)" }}
{{- end }}
{{- if and .Values.autoscaling.hpa.enabled (lt (int .Values.autoscaling.minReplicas) 1) }}
{{- fail "autoscaling.minReplicas: a plain HPA cannot scale to 0 (KEDA can)" }}
{{- end }}
{{- if gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas) }}
{{- fail "autoscaling.minReplicas is above autoscaling.maxReplicas" }}
{{- end }}
{{- $shutdown := include "wacampaign.durationSeconds" (.Values.config.SHUTDOWN_TIMEOUT | default "25s") }}
{{- if $shutdown }}
{{- range $component := list "api" "worker" }}
{{- $grace := int (get (get $.Values $component) "terminationGracePeriodSeconds") }}
{{- if le $grace (int $shutdown) }}
{{- fail (printf "%s.terminationGracePeriodSeconds (%d) must be above SHUTDOWN_TIMEOUT (%ss), or Kubernetes kills the process before it has finished stopping" $component $grace $shutdown) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
