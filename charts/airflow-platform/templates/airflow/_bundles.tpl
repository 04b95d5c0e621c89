{{/*
DAG bundles (values `dags`): the `[dag_processor] dag_bundle_config_list` JSON, the git connections
(AIRFLOW_CONN_* env) and the SSH key mounts. values.schema.json checks each field's shape; the checks
here span fields (unique names, URL scheme against credential type, git ref rules).

Where credentials go:
  token: env in the dag-processor (clones and fetches) and the api-server (the execution API hands the
         connection to a worker pod when it checks out its run's version). Worker pods never hold it.
  ssh:   a Secret volume (same Secret name) in the dag-processor and in the worker pods, whose git
         connection points at the mounted key and known_hosts; the worker namespace needs its own copy.
A missing Secret or key (optional refs) fails that bundle only, never the pods.
*/}}

{{- define "ap.bundles.connId" -}}
git_{{ .name | replace "-" "_" }}
{{- end -}}

{{- define "ap.bundles.credentialsDir" -}}
/opt/airflow/git-credentials/{{ .name }}
{{- end -}}

{{/* Fails with the values key of the first bundle setting that cannot work. */}}
{{- define "ap.bundles.validate" -}}
{{- $dags := .Values.dags -}}
{{- $names := dict -}}
{{- $connIds := dict -}}
{{- if $dags.platformBundle.enabled -}}
{{- $_ := set $names $dags.platformBundle.name "dags.platformBundle.name" -}}
{{- end -}}
{{- range $index, $bundle := $dags.bundles -}}
{{- $key := printf "dags.bundles[%d]" $index -}}
{{- if hasKey $names $bundle.name -}}
{{- fail (printf "%s.name: bundle name %q is already used by %s" $key $bundle.name (index $names $bundle.name)) -}}
{{- end -}}
{{- $_ := set $names $bundle.name (printf "%s.name" $key) -}}
{{- $connId := include "ap.bundles.connId" $bundle -}}
{{- if hasKey $connIds $connId -}}
{{- fail (printf "%s.name: %q and %s give the same git connection id %q (- and _ are the same there)" $key $bundle.name (index $connIds $connId) $connId) -}}
{{- end -}}
{{- $_ := set $connIds $connId (printf "%s.name %q" $key $bundle.name) -}}
{{- $url := $bundle.url -}}
{{- $https := hasPrefix "https://" $url -}}
{{- $http := hasPrefix "http://" $url -}}
{{- if and $http (not $bundle.allowPlainHttp) -}}
{{- fail (printf "%s.url: %q is plain http (credentials and code in clear text); use https://, or set %s.allowPlainHttp: true for an in-cluster test server" $key $url $key) -}}
{{- end -}}
{{- if and (or $https $http) (regexMatch "^https?://[^/]*@" $url) -}}
{{- fail (printf "%s.url: credentials must not be part of the URL (%s.credentials takes them from a Secret)" $key $key) -}}
{{- end -}}
{{- with $bundle.credentials -}}
{{- if and (eq .type "token") (not (or $https $http)) -}}
{{- fail (printf "%s.credentials.type: token authentication needs an https:// URL, not %q (use type ssh for SSH URLs)" $key $url) -}}
{{- end -}}
{{- if and (eq .type "ssh") (or $https $http) -}}
{{- fail (printf "%s.credentials.type: ssh needs an ssh://... or user@host:path URL, not %q (use type token for HTTPS)" $key $url) -}}
{{- end -}}
{{- end -}}
{{- $ref := $bundle.ref | default "main" -}}
{{- if or (contains ".." $ref) (contains "//" $ref) (hasSuffix "/" $ref) (hasSuffix ".lock" $ref) (contains "@{" $ref) -}}
{{- fail (printf "%s.ref: %q is not a valid branch or tag name (no '..', '//', '@{', trailing '/' or '.lock')" $key $ref) -}}
{{- end -}}
{{- if has ".." (splitList "/" ($bundle.subdir | default "")) -}}
{{- fail (printf "%s.subdir: %q leaves the repository ('..' is not allowed)" $key $bundle.subdir) -}}
{{- end -}}
{{- end -}}
{{- if and (not $dags.platformBundle.enabled) (not $dags.bundles) -}}
{{- fail "dags: no DAG bundle configured (dags.platformBundle.enabled is false and dags.bundles is empty)" -}}
{{- end -}}
{{- end -}}

{{/* The value of `[dag_processor] dag_bundle_config_list` (one-line JSON). */}}
{{- define "ap.bundles.configList" -}}
{{- include "ap.bundles.validate" . -}}
{{- $list := list -}}
{{- with .Values.dags.platformBundle -}}
{{- if .enabled -}}
{{- $list = append $list (dict
  "name" .name
  "classpath" "airflow.dag_processing.bundles.local.LocalDagBundle"
  "kwargs" (dict "path" "/opt/airflow/dags" "refresh_interval" (int .refreshInterval))) -}}
{{- end -}}
{{- end -}}
{{- range .Values.dags.bundles -}}
{{- $kwargs := dict
  "repo_url" .url
  "tracking_ref" (.ref | default "main")
  "refresh_interval" (int (.refreshInterval | default 60)) -}}
{{- if .subdir -}}
{{- $_ := set $kwargs "subdir" .subdir -}}
{{- end -}}
{{- if .credentials -}}
{{- $_ := set $kwargs "git_conn_id" (include "ap.bundles.connId" .) -}}
{{- end -}}
{{- $list = append $list (dict "name" .name "classpath" "airflow_platform_pools.bundles.GitDagBundle" "kwargs" $kwargs) -}}
{{- end -}}
{{- toJson $list -}}
{{- end -}}

{{/*
Env of the git connections. Args: ctx, types (list of credential types whose connections this
component needs: the dag-processor needs both, the api-server token, the worker pods ssh).
*/}}
{{- define "ap.bundles.credentialEnv" -}}
{{- $types := .types -}}
{{- range .ctx.Values.dags.bundles -}}
{{- $credentials := .credentials -}}
{{- if and $credentials (has $credentials.type $types) -}}
{{- $connId := include "ap.bundles.connId" . -}}
{{- $envName := printf "AIRFLOW_CONN_%s" (upper $connId) -}}
{{- if eq $credentials.type "token" -}}
{{- $tokenVar := printf "AIRFLOW_PLATFORM_GIT_TOKEN_%s" (upper $connId) }}
- name: {{ $tokenVar | quote }}
  valueFrom:
    secretKeyRef:
      name: {{ $credentials.secretName | quote }}
      key: {{ $credentials.tokenKey | default "token" | quote }}
      optional: true
{{- /* Kubernetes expands $(VAR) from the env above; the JSON around it is rendered by toJson. */}}
- name: {{ $envName | quote }}
  value: {{ dict "conn_type" "git" "host" .url "login" ($credentials.username | default "git") "password" (printf "$(%s)" $tokenVar) | toJson | quote }}
{{- else }}
{{- $dir := include "ap.bundles.credentialsDir" . }}
- name: {{ $envName | quote }}
  value: {{ dict "conn_type" "git" "host" .url "extra" (dict "key_file" (printf "%s/ssh-privatekey" $dir) "known_hosts_file" (printf "%s/known_hosts" $dir) "strict_host_key_checking" "yes") | toJson | quote }}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Volume mounts of the SSH keys (dag-processor and worker pods). */}}
{{- define "ap.bundles.credentialVolumeMounts" -}}
{{- range .Values.dags.bundles -}}
{{- if and .credentials (eq .credentials.type "ssh") }}
- name: git-{{ .name | replace "_" "-" }}
  mountPath: {{ include "ap.bundles.credentialsDir" . | quote }}
  readOnly: true
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Secret volumes of the SSH keys: files ssh-privatekey and known_hosts, readable by group 0 only. */}}
{{- define "ap.bundles.credentialVolumes" -}}
{{- range .Values.dags.bundles -}}
{{- if and .credentials (eq .credentials.type "ssh") }}
- name: git-{{ .name | replace "_" "-" }}
  secret:
    secretName: {{ .credentials.secretName | quote }}
    optional: true
    defaultMode: 0440
    items:
      - key: {{ .credentials.sshKeyKey | default "ssh-privatekey" | quote }}
        path: ssh-privatekey
      - key: {{ .credentials.knownHostsKey | default "known_hosts" | quote }}
        path: known_hosts
{{- end -}}
{{- end -}}
{{- end -}}
