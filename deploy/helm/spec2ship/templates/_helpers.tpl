{{/* Names, labels and the pieces every pod shares. */}}

{{- define "spec2ship.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "spec2ship.fullname" -}}
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

{{- define "spec2ship.selectorLabels" -}}
app.kubernetes.io/name: {{ include "spec2ship.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "spec2ship.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
{{ include "spec2ship.selectorLabels" . }}
{{- end -}}

{{- define "spec2ship.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "spec2ship.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "spec2ship.tag" -}}
{{- default .Chart.AppVersion .Values.image.tag -}}
{{- end -}}

{{- define "spec2ship.image" -}}
{{- printf "%s:%s" .Values.image.repository (include "spec2ship.tag" .) -}}
{{- end -}}

{{- define "spec2ship.gpuImage" -}}
{{- printf "%s:%s" .Values.image.repository (default (printf "%s-gpu" (include "spec2ship.tag" .)) .Values.image.gpuTag) -}}
{{- end -}}

{{/* The image's init (tini) runs the CLI, so every container's command is the CLI and its args a subcommand. */}}
{{- define "spec2ship.command" -}}
command: ["/usr/bin/tini", "--", "spec2ship"]
{{- end -}}

{{- define "spec2ship.temporalEnv" -}}
- name: TEMPORAL_ADDRESS
  value: {{ .Values.temporal.address | quote }}
- name: TEMPORAL_NAMESPACE
  value: {{ .Values.temporal.namespace | quote }}
{{- with .Values.temporal.apiKey }}
{{- if .secretName }}
- name: TEMPORAL_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .secretName }}
      key: {{ .key }}
{{- end }}
{{- end }}
{{- if .Values.temporal.tls.enabled }}
- name: TEMPORAL_TLS
  value: "true"
- name: TEMPORAL_TLS_CERT
  value: /etc/spec2ship/temporal-tls/{{ .Values.temporal.tls.certKey }}
- name: TEMPORAL_TLS_KEY
  value: /etc/spec2ship/temporal-tls/{{ .Values.temporal.tls.keyKey }}
{{- if .Values.temporal.tls.caKey }}
- name: TEMPORAL_TLS_CA
  value: /etc/spec2ship/temporal-tls/{{ .Values.temporal.tls.caKey }}
{{- end }}
{{- end }}
- name: SPEC2SHIP_TASK_QUEUE
  value: {{ .Values.taskQueue | quote }}
{{- with include "spec2ship.codecEnv" . | trim }}
{{ . }}
{{- end }}
{{- end -}}

{{/* Payload encryption: where the mounted keys are and which one encrypts (every process that talks to Temporal). */}}
{{- define "spec2ship.codecEnv" -}}
{{- if .Values.codec.enabled }}
- name: SPEC2SHIP_CODEC_KEYS_DIR
  value: /etc/spec2ship/codec-keys
- name: SPEC2SHIP_CODEC_KEY_ID
  value: {{ .Values.codec.currentKeyId | quote }}
{{- end }}
{{- end -}}

{{/* The keys Secret, whole: each of its keys is a file named by its key id, and every one decrypts. */}}
{{- define "spec2ship.codecVolume" -}}
{{- if .Values.codec.enabled }}
- name: codec-keys
  secret:
    secretName: {{ .Values.codec.keys.secretName }}
{{- end }}
{{- end -}}

{{- define "spec2ship.codecMount" -}}
{{- if .Values.codec.enabled }}
- name: codec-keys
  mountPath: /etc/spec2ship/codec-keys
  readOnly: true
{{- end }}
{{- end -}}

{{- define "spec2ship.commonEnv" -}}
{{ include "spec2ship.temporalEnv" . }}
- name: SPEC2SHIP_DATA_DIR
  value: /data/.spec2ship
- name: TMPDIR
  value: /tmp
{{- with .Values.temporal.uiUrl }}
- name: SPEC2SHIP_UI_URL
  value: {{ . | quote }}
{{- end }}
{{- with .Values.otel.endpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ . | quote }}
{{- end }}
- name: SPEC2SHIP_CONFIG
  value: /etc/spec2ship/config/spec2ship.yaml
{{- range .Values.extraSecretEnv }}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .secretName }}
      key: {{ .key }}
{{- end }}
{{- end -}}

{{- define "spec2ship.githubEnv" -}}
{{- with .Values.github }}
{{- if .url }}
- name: SPEC2SHIP_GITHUB_URL
  value: {{ .url | quote }}
{{- end }}
{{- if .appId }}
- name: SPEC2SHIP_GITHUB_APP_ID
  value: {{ .appId | quote }}
{{- end }}
{{- if .privateKey.secretName }}
- name: SPEC2SHIP_GITHUB_PRIVATE_KEY_FILE
  value: /etc/spec2ship/github/{{ .privateKey.key }}
{{- end }}
{{- if .token.secretName }}
- name: SPEC2SHIP_GITHUB_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ .token.secretName }}
      key: {{ .token.key }}
{{- end }}
{{- if not .throttle }}
- name: SPEC2SHIP_GITHUB_THROTTLE
  value: "false"
{{- end }}
{{- end }}
{{- end -}}

{{- define "spec2ship.githubVolume" -}}
{{- if .Values.github.privateKey.secretName }}
- name: github-app
  secret:
    secretName: {{ .Values.github.privateKey.secretName }}
    items:
      - key: {{ .Values.github.privateKey.key }}
        path: {{ .Values.github.privateKey.key }}
{{- end }}
{{- end -}}

{{- define "spec2ship.githubMount" -}}
{{- if .Values.github.privateKey.secretName }}
- name: github-app
  mountPath: /etc/spec2ship/github
  readOnly: true
{{- end }}
{{- end -}}

{{/* Volumes every pod has: its data folder, /tmp (the root filesystem is read-only), Temporal's TLS files. */}}
{{- define "spec2ship.volumes" -}}
- name: data
  emptyDir:
    sizeLimit: {{ .dataSizeLimit }}
- name: tmp
  emptyDir: {}
{{- if .root.Values.temporal.tls.enabled }}
- name: temporal-tls
  secret:
    secretName: {{ .root.Values.temporal.tls.secretName }}
    items:
      - key: {{ .root.Values.temporal.tls.certKey }}
        path: {{ .root.Values.temporal.tls.certKey }}
      - key: {{ .root.Values.temporal.tls.keyKey }}
        path: {{ .root.Values.temporal.tls.keyKey }}
      {{- if .root.Values.temporal.tls.caKey }}
      - key: {{ .root.Values.temporal.tls.caKey }}
        path: {{ .root.Values.temporal.tls.caKey }}
      {{- end }}
{{- end }}
- name: config
  configMap:
    name: {{ include "spec2ship.fullname" .root }}-config
{{- with include "spec2ship.codecVolume" .root | trim }}
{{ . }}
{{- end }}
{{- end -}}

{{- define "spec2ship.mounts" -}}
- name: data
  mountPath: /data
- name: tmp
  mountPath: /tmp
{{- if .Values.temporal.tls.enabled }}
- name: temporal-tls
  mountPath: /etc/spec2ship/temporal-tls
  readOnly: true
{{- end }}
- name: config
  mountPath: /etc/spec2ship/config
  readOnly: true
{{- with include "spec2ship.codecMount" . | trim }}
{{ . }}
{{- end }}
{{- end -}}

{{/* The ports every worker pod declares: its probes, and the one reserved for /metrics. */}}
{{- define "spec2ship.workerPorts" -}}
- name: health
  containerPort: {{ .healthPort }}
  protocol: TCP
- name: metrics
  containerPort: {{ .root.Values.metrics.port }}
  protocol: TCP
{{- end -}}

{{- define "spec2ship.workerProbes" -}}
startupProbe:
  httpGet: {path: /healthz, port: health}
  periodSeconds: 2
  failureThreshold: 60
livenessProbe:
  httpGet: {path: /healthz, port: health}
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  httpGet: {path: /readyz, port: health}
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 2
{{- end -}}

{{- define "spec2ship.podSpecCommon" -}}
serviceAccountName: {{ include "spec2ship.serviceAccountName" . }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end -}}

{{/* The blob store every worker and GPU worker shares (agent conversations, large tool results). */}}
{{- define "spec2ship.storeEnv" -}}
{{- with .Values.store }}
- name: SPEC2SHIP_STORE
  value: {{ .backend | quote }}
- name: SPEC2SHIP_STORE_RETENTION
  value: {{ .retention | quote }}
{{- if eq .backend "folder" }}
- name: SPEC2SHIP_STORE_DIR
  value: /store
{{- else }}
- name: SPEC2SHIP_STORE_BUCKET
  value: {{ .s3.bucket | quote }}
- name: SPEC2SHIP_STORE_PREFIX
  value: {{ .s3.prefix | quote }}
{{- with .s3.endpoint }}
- name: SPEC2SHIP_STORE_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- with .s3.region }}
- name: SPEC2SHIP_STORE_REGION
  value: {{ . | quote }}
{{- end }}
{{- if ne .s3.pathStyle "auto" }}
- name: SPEC2SHIP_STORE_PATH_STYLE
  value: {{ .s3.pathStyle | quote }}
{{- end }}
{{- with .s3.credentials }}
{{- if .secretName }}
- name: SPEC2SHIP_STORE_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ .secretName }}
      key: {{ .accessKeyIdKey }}
- name: SPEC2SHIP_STORE_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .secretName }}
      key: {{ .secretAccessKeyKey }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "spec2ship.storeVolume" -}}
{{- if eq .Values.store.backend "folder" }}
- name: store
  persistentVolumeClaim:
    claimName: {{ .Values.store.folder.claim }}
{{- end }}
{{- end -}}

{{- define "spec2ship.storeMount" -}}
{{- if eq .Values.store.backend "folder" }}
- name: store
  mountPath: /store
{{- end }}
{{- end -}}

{{/* SPEC2SHIP_METRICS_PORT for a process with a Temporal client: its runtime serves /metrics there. */}}
{{- define "spec2ship.metricsEnv" -}}
{{- if .Values.metrics.enabled }}
- name: SPEC2SHIP_METRICS_PORT
  value: {{ .Values.metrics.port | quote }}
{{- end }}
{{- end -}}

{{/* Pod annotations for Prometheus' annotation-based discovery of /metrics. */}}
{{- define "spec2ship.metricsAnnotations" -}}
{{- if and .Values.metrics.enabled .Values.metrics.scrapeAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .Values.metrics.port | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- end -}}
