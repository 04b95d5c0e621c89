{{/*
One Airflow control-plane Deployment (api-server, scheduler, dag-processor, triggerer share it).
Args: ctx, component, settings (the component's values), command (list), automountToken (bool), and
probes (map), ports, extraInitContainers, extraEnv, extraVolumeMounts, extraVolumes (lists, optional;
a YAML string from a helper is accepted too, see ap.asYaml).
*/}}
{{- define "ap.airflow.deployment" -}}
{{- $ctx := .ctx -}}
{{- $containers := list "wait-for-migrations" .component -}}
{{- range include "ap.asYaml" .extraInitContainers | fromYamlArray }}{{ $containers = append $containers .name }}{{ end -}}
{{- $volumes := list -}}
{{- range concat (include "ap.airflow.volumes" $ctx | fromYamlArray) (include "ap.asYaml" .extraVolumes | fromYamlArray) }}{{ $volumes = append $volumes .name }}{{ end -}}
{{- $mountPaths := list -}}
{{- range concat (include "ap.airflow.volumeMounts" $ctx | fromYamlArray) (include "ap.asYaml" .extraVolumeMounts | fromYamlArray) }}{{ $mountPaths = append $mountPaths .mountPath }}{{ end -}}
{{- include "ap.validation.extraNames" (dict "key" (printf "airflow.%s" (index (dict "api-server" "apiServer" "scheduler" "scheduler" "dag-processor" "dagProcessor" "triggerer" "triggerer") .component)) "settings" .settings "containers" $containers "volumes" $volumes "mountPaths" $mountPaths) -}}
{{- $fullname := include "ap.fullname" $ctx -}}
{{- $labelArgs := dict "ctx" $ctx "component" .component -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $fullname }}-{{ .component }}
  namespace: {{ $ctx.Release.Namespace | quote }}
  labels:
    {{- include "ap.labels" $labelArgs | nindent 4 }}
spec:
  replicas: {{ int64 .settings.replicas }}
  revisionHistoryLimit: 3
  selector:
    matchLabels:
      {{- include "ap.selectorLabels" $labelArgs | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "ap.airflow.podLabels" (dict "labels" $labelArgs "settings" .settings) | nindent 8 }}
      annotations:
        {{- include "ap.airflow.extendedPodAnnotations" (dict "ctx" $ctx "settings" .settings) | nindent 8 }}
    spec:
      serviceAccountName: {{ include "ap.airflow.serviceAccountName" $labelArgs | quote }}
      automountServiceAccountToken: {{ .automountToken }}
      enableServiceLinks: false
      {{- include "ap.imagePullSecrets" $ctx | nindent 6 }}
      securityContext:
        {{- include "ap.podSecurityContext" (dict "ctx" $ctx "uid" 50000) | nindent 8 }}
      {{- include "ap.pools.placement" (dict "ctx" $ctx "pool" $ctx.Values.nodePools.airflow "key" "nodePools.airflow" "settings" .settings "component" .component "replicas" .settings.replicas) | nindent 6 }}
      initContainers:
        {{- include "ap.airflow.waitForMigrations" $ctx | nindent 8 }}
        {{- with .extraInitContainers }}
        {{- include "ap.asYaml" . | nindent 8 }}
        {{- end }}
        {{- with .settings.extraInitContainers }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      containers:
        - name: {{ .component | quote }}
          image: {{ include "ap.image" (dict "ctx" $ctx "image" "airflow") | quote }}
          imagePullPolicy: {{ $ctx.Values.images.pullPolicy | quote }}
          command:
            {{- toYaml .command | nindent 12 }}
          env:
            {{- include "ap.airflow.commonEnv" $ctx | nindent 12 }}
            {{- include "ap.airflow.secretEnv" $ctx | nindent 12 }}
            {{- with .extraEnv }}
            {{- include "ap.asYaml" . | nindent 12 }}
            {{- end }}
            {{- with .settings.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          {{- with .settings.extraEnvFrom }}
          envFrom:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- with .ports }}
          ports:
            {{- include "ap.asYaml" . | nindent 12 }}
          {{- end }}
          {{- include "ap.asYaml" .probes | nindent 10 }}
          resources:
            {{- toYaml .settings.resources | nindent 12 }}
          securityContext:
            {{- include "ap.containerSecurityContext" (dict "readOnly" $ctx.Values.airflow.readOnlyRootFilesystem) | nindent 12 }}
          volumeMounts:
            {{- include "ap.airflow.volumeMounts" $ctx | nindent 12 }}
            {{- with .extraVolumeMounts }}
            {{- include "ap.asYaml" . | nindent 12 }}
            {{- end }}
            {{- with .settings.extraVolumeMounts }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
        {{- with .settings.extraContainers }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      volumes:
        {{- include "ap.airflow.volumes" $ctx | nindent 8 }}
        {{- with .extraVolumes }}
        {{- include "ap.asYaml" . | nindent 8 }}
        {{- end }}
        {{- with .settings.extraVolumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
{{- if .settings.podDisruptionBudget.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $fullname }}-{{ .component }}
  namespace: {{ $ctx.Release.Namespace | quote }}
  labels:
    {{- include "ap.labels" $labelArgs | nindent 4 }}
spec:
  maxUnavailable: {{ include "ap.validation.intOrString" .settings.podDisruptionBudget.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "ap.selectorLabels" $labelArgs | nindent 6 }}
{{- end }}
{{- end -}}

{{/* Liveness/readiness probes from `airflow jobs check` for a job type. Args: jobType. */}}
{{- define "ap.airflow.jobCheckProbes" -}}
startupProbe:
  exec:
    command: [airflow, jobs, check, --job-type, {{ .jobType }}, --local]
  periodSeconds: 15
  timeoutSeconds: 60
  failureThreshold: 20
livenessProbe:
  exec:
    command: [airflow, jobs, check, --job-type, {{ .jobType }}, --local]
  periodSeconds: 60
  timeoutSeconds: 60
  failureThreshold: 5
{{- end -}}
