{{/*
Shared helpers: names, labels, images, security contexts, node-pool placement, Airflow pod parts.
Templates that take arguments receive a dict with the root context as "ctx".
*/}}

{{/* The release name is the prefix of every object (contract: fullname = release name). */}}
{{- define "ap.fullname" -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "ap.workers.namespace" -}}
{{- .Values.namespaces.workers.name -}}
{{- end -}}

{{/*
Ports: one definition each. Containers declare them by name (api, logs, postgres, native, http) and
Services target the names; NetworkPolicies, commands and URLs take the numbers from here.
*/}}
{{- define "ap.apiServer.port" -}}8080{{- end -}}
{{- define "ap.triggerer.logsPort" -}}8794{{- end -}}
{{- define "ap.workers.logsPort" -}}8793{{- end -}}
{{- define "ap.postgres.port" -}}5432{{- end -}}
{{- define "ap.clickhouse.nativePort" -}}9000{{- end -}}
{{- define "ap.clickhouse.httpPort" -}}8123{{- end -}}

{{- define "ap.apiServer.serviceName" -}}
{{- printf "%s-api-server" (include "ap.fullname" .) -}}
{{- end -}}

{{/* In-cluster base URL of the api-server Service (no trailing slash). */}}
{{- define "ap.apiServer.url" -}}
{{- printf "http://%s.%s.svc.cluster.local:%s" (include "ap.apiServer.serviceName" .) .Release.Namespace (include "ap.apiServer.port" .) -}}
{{- end -}}

{{/* Service account of an Airflow component or of the executor worker pods. Args: ctx, component. */}}
{{- define "ap.airflow.serviceAccountName" -}}
{{- printf "%s-%s" (include "ap.fullname" .ctx) .component -}}
{{- end -}}

{{/* Service account of the job pods in every workload namespace (no API rights, no token). */}}
{{- define "ap.workload.serviceAccountName" -}}
airflow-workload
{{- end -}}

{{/* A pod-spec part given as a list/map (rendered with toYaml) or as a YAML string (kept). */}}
{{- define "ap.asYaml" -}}
{{- if kindIs "string" . -}}{{ . }}{{- else if . -}}{{ toYaml . }}{{- end -}}
{{- end -}}

{{/* Kubernetes recommended labels. Args: ctx, component. */}}
{{- define "ap.labels" -}}
{{ include "ap.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: airflow-platform
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Labels that select the pods of one component. Args: ctx, component. */}}
{{- define "ap.selectorLabels" -}}
app.kubernetes.io/name: {{ .ctx.Chart.Name }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Keep policy for data that must outlive the release (see keepOnUninstall). */}}
{{- define "ap.keepAnnotation" -}}
{{- if .Values.keepOnUninstall -}}
helm.sh/resource-policy: keep
{{- end -}}
{{- end -}}

{{/* Full image reference. Args: ctx, image (key under images). */}}
{{- define "ap.image" -}}
{{- $images := .ctx.Values.images -}}
{{- $repository := (index $images .image).repository -}}
{{- $tag := $images.tag | default .ctx.Chart.Version -}}
{{- if $images.registry -}}
{{- printf "%s/%s:%s" (trimSuffix "/" $images.registry) $repository $tag -}}
{{- else -}}
{{- printf "%s:%s" $repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "ap.imagePullSecrets" -}}
{{- with .Values.images.pullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Pod-level securityContext (restricted profile). Args: ctx, uid (optional), extra (optional map). */}}
{{- define "ap.podSecurityContext" -}}
{{- $context := dict "runAsNonRoot" true "seccompProfile" (dict "type" "RuntimeDefault") -}}
{{- if .uid }}
{{- $_ := set $context "runAsUser" .uid -}}
{{- $_ := set $context "runAsGroup" 0 -}}
{{- $_ := set $context "fsGroup" 0 -}}
{{- end }}
{{- $context = mergeOverwrite $context (.extra | default dict) -}}
{{- toYaml $context -}}
{{- end -}}

{{/* Container securityContext. Args: readOnly (bool). */}}
{{- define "ap.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: {{ .readOnly }}
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The node-pool definition (node-pools/pools.yaml through the files/ symlink). */}}
{{- define "ap.pools.file" -}}
{{- $raw := .Files.Get "files/node-pools.yaml" -}}
{{- if not $raw -}}
{{- fail "files/node-pools.yaml is missing: it must be a symlink to node-pools/pools.yaml" -}}
{{- end -}}
{{- $raw -}}
{{- end -}}

{{/* One pool as JSON. Args: ctx, pool. Fails with the key that named an unknown pool. */}}
{{- define "ap.pools.pool" -}}
{{- $pools := (include "ap.pools.file" .ctx | fromYaml).pools -}}
{{- if not (hasKey $pools .pool) -}}
{{- fail (printf "%s: unknown node pool %q (node-pools/pools.yaml defines %s)" (.key | default "pool") .pool (keys $pools | sortAlpha | join ", ")) -}}
{{- end -}}
{{- index $pools .pool | toJson -}}
{{- end -}}

{{/* Tolerations of a pool's taints. Args: ctx, pool. Output: JSON list. */}}
{{- define "ap.pools.tolerations" -}}
{{- $pool := include "ap.pools.pool" . | fromJson -}}
{{- $tolerations := list -}}
{{- range $pool.taints -}}
{{- $tolerations = append $tolerations (dict "key" .key "operator" "Equal" "value" (toString .value) "effect" .effect) -}}
{{- end -}}
{{- toJson $tolerations -}}
{{- end -}}

{{/* Required node affinity on every label of a pool. Args: ctx, pool. Output: JSON object. */}}
{{- define "ap.pools.affinity" -}}
{{- $pool := include "ap.pools.pool" . | fromJson -}}
{{- $expressions := list -}}
{{- range $key, $value := $pool.labels -}}
{{- $expressions = append $expressions (dict "key" $key "operator" "In" "values" (list (toString $value))) -}}
{{- end -}}
{{- $required := dict "nodeSelectorTerms" (list (dict "matchExpressions" $expressions)) -}}
{{- toJson (dict "nodeAffinity" (dict "requiredDuringSchedulingIgnoredDuringExecution" $required)) -}}
{{- end -}}

{{/* Pod spec lines placing a pod on a pool. Args: ctx, pool, key (values key, for errors). */}}
{{- define "ap.pools.placement" -}}
tolerations:
{{- include "ap.pools.tolerations" . | fromJsonArray | toYaml | nindent 2 }}
affinity:
{{- include "ap.pools.affinity" . | fromJson | toYaml | nindent 2 }}
{{- end -}}

{{/* Namespace of a pool's job pods (first workload namespace that lists it). Args: ctx, pool. */}}
{{- define "ap.pools.namespace" -}}
{{- $found := "" -}}
{{- range .ctx.Values.namespaces.workloads -}}
{{- if and (not $found) (has $.pool .pools) -}}
{{- $found = .name -}}
{{- end -}}
{{- end -}}
{{- if not $found -}}
{{- fail (printf "namespaces.workloads: node pool %q is not listed in any workload namespace's pools" .pool) -}}
{{- end -}}
{{- $found -}}
{{- end -}}

{{/* Names of the Airflow Secrets and their keys (generated or user-provided). Args: ctx, name. */}}
{{- define "ap.secrets.name" -}}
{{- $secret := index .ctx.Values.secrets .name -}}
{{- $secret.existingSecret | default (printf "%s-%s" (include "ap.fullname" .ctx) (.name | kebabcase)) -}}
{{- end -}}

{{- define "ap.secrets.adminName" -}}
{{- .Values.secrets.adminPassword.existingSecret | default (printf "%s-admin" (include "ap.fullname" .)) -}}
{{- end -}}

{{- define "ap.database.secretName" -}}
{{- if .Values.postgres.enabled -}}
{{- printf "%s-postgres" (include "ap.fullname" .) -}}
{{- else -}}
{{- .Values.externalDatabase.secretName -}}
{{- end -}}
{{- end -}}

{{- define "ap.database.secretKey" -}}
{{- if .Values.postgres.enabled -}}connection{{- else -}}{{ .Values.externalDatabase.secretKey }}{{- end -}}
{{- end -}}

{{/*
A value of an existing Secret, or a new random one. On upgrade the chart looks the Secret up and keeps
its value, so generated keys never change (helm template has no cluster: it always generates).
Args: ctx, namespace, name, key, generate (the random value to use when nothing exists). Output: base64.
*/}}
{{- define "ap.secrets.keptValue" -}}
{{- $existing := lookup "v1" "Secret" .namespace .name -}}
{{- $data := dig "data" (dict) ($existing | default dict) -}}
{{- if hasKey $data .key -}}
{{- index $data .key -}}
{{- else -}}
{{- .generate | b64enc -}}
{{- end -}}
{{- end -}}

{{/* Environment of every Airflow control-plane container: secrets only through secretKeyRef. */}}
{{- define "ap.airflow.secretEnv" -}}
- name: AIRFLOW__DATABASE__SQL_ALCHEMY_CONN
  valueFrom:
    secretKeyRef:
      name: {{ include "ap.database.secretName" . }}
      key: {{ include "ap.database.secretKey" . }}
- name: AIRFLOW__CORE__FERNET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "ap.secrets.name" (dict "ctx" . "name" "fernetKey") }}
      key: {{ .Values.secrets.fernetKey.key }}
- name: AIRFLOW__API_AUTH__JWT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "ap.secrets.name" (dict "ctx" . "name" "jwtSecret") }}
      key: {{ .Values.secrets.jwtSecret.key }}
- name: AIRFLOW__API__SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "ap.secrets.name" (dict "ctx" . "name" "apiSecretKey") }}
      key: {{ .Values.secrets.apiSecretKey.key }}
{{- end -}}

{{/* Environment every Airflow container shares (control plane and worker pods). */}}
{{- define "ap.airflow.commonEnv" -}}
- name: AIRFLOW_HOME
  value: /opt/airflow
- name: AIRFLOW_PLATFORM_PRESETS
  value: /opt/airflow/platform/presets.json
- name: PYTHONDONTWRITEBYTECODE
  value: "1"
{{- include "ap.remoteLogs.env" . }}
{{- include "ap.metrics.env" . }}
{{- with .Values.airflow.env }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Volume mounts every Airflow container shares. */}}
{{- define "ap.airflow.volumeMounts" -}}
- name: config
  mountPath: /opt/airflow/airflow.cfg
  subPath: airflow.cfg
  readOnly: true
- name: pool-presets
  mountPath: /opt/airflow/platform
  readOnly: true
- name: logs
  mountPath: /opt/airflow/logs
  {{- if eq .Values.airflow.logs.mode "hostPath" }}
  subPath: {{ .Values.airflow.logs.hostPath.subPath }}
  {{- end }}
- name: tmp
  mountPath: /tmp
{{- end -}}

{{/* Volumes every Airflow pod shares (ConfigMaps exist in the control-plane and worker namespaces). */}}
{{- define "ap.airflow.volumes" -}}
- name: config
  configMap:
    name: {{ include "ap.fullname" . }}-config
- name: pool-presets
  configMap:
    name: {{ include "ap.fullname" . }}-pool-presets
- name: logs
  {{- if eq .Values.airflow.logs.mode "none" }}
  emptyDir:
    sizeLimit: {{ .Values.airflow.logs.emptyDirSizeLimit }}
  {{- else }}
  persistentVolumeClaim:
    claimName: {{ include "ap.fullname" . }}-logs
  {{- end }}
- name: tmp
  emptyDir: {}
{{- end -}}

{{/* Init container: wait until `airflow db migrate` (the migration Job) has finished. */}}
{{- define "ap.airflow.waitForMigrations" -}}
- name: wait-for-migrations
  image: {{ include "ap.image" (dict "ctx" . "image" "airflow") }}
  imagePullPolicy: {{ .Values.images.pullPolicy }}
  command: [airflow, db, check-migrations, --migration-wait-timeout, {{ .Values.airflow.migrationWaitTimeout | quote }}]
  env:
    {{- include "ap.airflow.commonEnv" . | nindent 4 }}
    {{- include "ap.airflow.secretEnv" . | nindent 4 }}
  volumeMounts:
    {{- include "ap.airflow.volumeMounts" . | nindent 4 }}
  resources:
    requests: {cpu: 50m, memory: 256Mi}
    limits: {cpu: 500m, memory: 768Mi}
  securityContext:
    {{- include "ap.containerSecurityContext" (dict "readOnly" .Values.airflow.readOnlyRootFilesystem) | nindent 4 }}
{{- end -}}

{{/* Pod annotations that roll the pods when their configuration changes. */}}
{{- define "ap.airflow.podAnnotations" -}}
checksum/config: {{ include (print .Template.BasePath "/airflow/config.yaml") . | sha256sum }}
checksum/presets: {{ include (print .Template.BasePath "/pools/presets.yaml") . | sha256sum }}
{{- if .Values.airflow.logs.remote.enabled }}
checksum/remote-logs: {{ include "ap.remoteLogs.connection" . | sha256sum }}
{{- end }}
{{- end -}}

{{/* Namespace of the demo ClickHouse pair: the first workload namespace. */}}
{{- define "ap.clickhouse.namespace" -}}
{{- (first .Values.namespaces.workloads).name -}}
{{- end -}}

{{/* ---- Operations (issue 15): remote logs, metrics, housekeeping ---- */}}

{{/* Airflow connection id of the remote log store (defined by the env var ap.remoteLogs.env sets). */}}
{{- define "ap.remoteLogs.connId" -}}
airflow_platform_logs
{{- end -}}

{{/* s3://bucket/prefix of the remote task logs. Fails when remote logging is on without a bucket. */}}
{{- define "ap.remoteLogs.folder" -}}
{{- $remote := .Values.airflow.logs.remote -}}
{{- if not $remote.bucket -}}
{{- fail "airflow.logs.remote.bucket: required when airflow.logs.remote.enabled is true" -}}
{{- end -}}
{{- printf "s3://%s/%s" $remote.bucket (trimAll "/" $remote.prefix) -}}
{{- end -}}

{{/* The remote-log connection as Airflow JSON (no secret in it; the keys come as AWS_* env). */}}
{{- define "ap.remoteLogs.connection" -}}
{{- $remote := .Values.airflow.logs.remote -}}
{{- $extra := dict "region_name" $remote.region -}}
{{- with $remote.endpointUrl -}}
{{- $_ := set $extra "endpoint_url" . -}}
{{- end -}}
{{- if ne $remote.addressingStyle "auto" -}}
{{- $_ := set $extra "config_kwargs" (dict "s3" (dict "addressing_style" $remote.addressingStyle)) -}}
{{- end -}}
{{- dict "conn_type" "aws" "extra" $extra | toJson -}}
{{- end -}}

{{- define "ap.remoteLogs.secretName" -}}
{{- printf "%s-remote-logs" (include "ap.fullname" .) -}}
{{- end -}}

{{/*
Environment for remote logging: the connection (from the chart's Secret <release>-remote-logs, like
every AIRFLOW_CONN_*) and, when a credentials Secret is named, the static keys the AWS SDK reads.
Without one the SDK's default chain (a cloud workload identity) applies.
*/}}
{{- define "ap.remoteLogs.env" -}}
{{- $remote := .Values.airflow.logs.remote -}}
{{- if $remote.enabled }}
- name: AIRFLOW_CONN_{{ include "ap.remoteLogs.connId" . | upper }}
  valueFrom:
    secretKeyRef:
      name: {{ include "ap.remoteLogs.secretName" . }}
      key: connection
{{- with $remote.credentials.existingSecret }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $remote.credentials.accessKeyIdKey }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $remote.credentials.secretAccessKeyKey }}
{{- end }}
{{- end }}
{{- end -}}

{{/* airflow.cfg sections the ops features set (merged over airflow.config). Output: YAML map. */}}
{{- define "ap.airflow.featureConfig" -}}
{{- $config := dict -}}
{{- $remote := .Values.airflow.logs.remote -}}
{{- if $remote.enabled -}}
{{- $_ := set $config "logging" (dict
  "remote_logging" "True"
  "remote_base_log_folder" (include "ap.remoteLogs.folder" .)
  "remote_log_conn_id" (include "ap.remoteLogs.connId" .)
  "delete_local_logs" (ternary "True" "False" $remote.deleteLocalCopy)) -}}
{{- end -}}
{{- if .Values.metrics.enabled -}}
{{- $_ := set $config "metrics" (dict "otel_on" "True" "otel_prefix" .Values.metrics.prefix "statsd_on" "False") -}}
{{- end -}}
{{- toYaml $config -}}
{{- end -}}

{{/*
OpenTelemetry metrics export (standard OTEL_* variables, which Airflow prefers over [metrics] otel_host).
Each pod is its own instance (service.instance.id = pod name), so replicas never overwrite each other.
*/}}
{{- define "ap.metrics.env" -}}
{{- if .Values.metrics.enabled }}
- name: OTEL_EXPORTER_OTLP_METRICS_ENDPOINT
  value: {{ .Values.metrics.otlpEndpoint | quote }}
- name: OTEL_EXPORTER_OTLP_METRICS_PROTOCOL
  value: http/protobuf
- name: OTEL_METRIC_EXPORT_INTERVAL
  value: {{ mul .Values.metrics.exportIntervalSeconds 1000 | quote }}
- name: OTEL_SERVICE_NAME
  value: {{ include "ap.fullname" . | quote }}
- name: AIRFLOW_PLATFORM_POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: OTEL_RESOURCE_ATTRIBUTES
  value: "service.instance.id=$(AIRFLOW_PLATFORM_POD_NAME),k8s.pod.name=$(AIRFLOW_PLATFORM_POD_NAME)"
{{- end }}
{{- end -}}

{{/*
Command of the db-clean CronJob (also run by the tests against a real metadata database). Reads
RETENTION_DAYS (integer, schema-checked) and CLEAN_TABLES (comma-separated, "" = all) from the env.
*/}}
{{- define "ap.housekeeping.dbCleanCommand" -}}
- bash
- -c
- |
  set -euo pipefail
  cutoff="$(date -u -d "-${RETENTION_DAYS} days" +%Y-%m-%dT%H:%M:%S+00:00)"
  tables=()
  if [[ -n "${CLEAN_TABLES}" ]]; then tables=(--tables "${CLEAN_TABLES}"); fi
  echo "airflow db clean: rows older than ${cutoff} (${RETENTION_DAYS} days), tables: ${CLEAN_TABLES:-all}"
  exec airflow db clean --clean-before-timestamp "${cutoff}" --skip-archive --yes "${tables[@]}"
{{- end -}}
