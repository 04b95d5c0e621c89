{{/*
Shared helpers: names, labels, images, security contexts, node-pool placement, Airflow pod parts.
Templates that take arguments receive a dict with the root context as "ctx".
*/}}

{{/* The release name is the prefix of every object (contract: fullname = release name). */}}
{{- define "ap.fullname" -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{/*
A CronJob's name: at most 52 characters, because its Jobs are named <cronjob>-<11 characters> and a
Job's name is a label value (63). A release name long enough to reach it (Helm allows 53) is cut.
*/}}
{{- define "ap.housekeeping.cronJobName" -}}
{{- . | trunc 52 | trimSuffix "-" -}}
{{- end -}}

{{/* In-cluster DNS name of a Service. Args: ctx, name, namespace. */}}
{{- define "ap.cluster.serviceHost" -}}
{{- printf "%s.%s.svc.%s" .name .namespace .ctx.Values.clusterDomain -}}
{{- end -}}

{{/*
[api] base_url: airflow.baseUrl, or derived from the Ingress (scheme from its TLS, first host, path).
An explicit baseUrl with an Ingress must name one of its hosts with the Ingress's scheme: links in the
UI and in e-mails would point elsewhere otherwise. "" = not set.
*/}}
{{- define "ap.apiServer.baseUrl" -}}
{{- $ingress := .Values.airflow.apiServer.ingress -}}
{{- $scheme := ternary "https" "http" (not (empty $ingress.tls.secretName)) -}}
{{- if and $ingress.enabled (not .Values.airflow.baseUrl) -}}
{{- if hasPrefix "*." (first $ingress.hosts) -}}
{{- fail (printf "airflow.apiServer.ingress.hosts[0]: %q is a wildcard, which cannot be the address in links (base_url); list a concrete host first or set airflow.baseUrl" (first $ingress.hosts)) -}}
{{- end -}}
{{- printf "%s://%s%s" $scheme (first $ingress.hosts) (trimSuffix "/" $ingress.path) -}}
{{- else if $ingress.enabled -}}
{{- $url := urlParse .Values.airflow.baseUrl -}}
{{- $served := has $url.hostname $ingress.hosts -}}
{{- range $ingress.hosts -}}
{{- /* a wildcard host serves exactly one more DNS label, as the Ingress API defines it */ -}}
{{- if and (hasPrefix "*." .) (hasSuffix (trimPrefix "*" .) $url.hostname) (not (contains "." (trimSuffix (trimPrefix "*" .) $url.hostname))) (ne (trimSuffix (trimPrefix "*" .) $url.hostname) "") -}}
{{- $served = true -}}
{{- end -}}
{{- end -}}
{{- if not $served -}}
{{- fail (printf "airflow.baseUrl: host %q is not one of airflow.apiServer.ingress.hosts (%s)" $url.hostname (join ", " $ingress.hosts)) -}}
{{- end -}}
{{- if ne $url.scheme $scheme -}}
{{- fail (printf "airflow.baseUrl: scheme %q differs from the Ingress (%s: airflow.apiServer.ingress.tls.secretName %s)" $url.scheme $scheme (ternary "is set" "is empty" (eq $scheme "https"))) -}}
{{- end -}}
{{- .Values.airflow.baseUrl -}}
{{- else -}}
{{- .Values.airflow.baseUrl -}}
{{- end -}}
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
{{- printf "http://%s:%s" (include "ap.cluster.serviceHost" (dict "ctx" . "name" (include "ap.apiServer.serviceName" .) "namespace" .Release.Namespace)) (include "ap.apiServer.port" .) -}}
{{- end -}}

{{/* Service account of an Airflow component or of the executor worker pods. Args: ctx, component. */}}
{{- define "ap.airflow.serviceAccountName" -}}
{{- printf "%s-%s" (include "ap.fullname" .ctx) .component -}}
{{- end -}}

{{/* Service account of the job pods in every workload namespace (no API rights, no token). */}}
{{- define "ap.workload.serviceAccountName" -}}
airflow-workload
{{- end -}}

{{/*
A CEL literal of a string, or of a list or map of them, for admission-policy expressions: the value's
JSON. Go's encoder writes a string as "..." with only the escapes \" \\ \b \f \n \r \t and \uXXXX
(other control characters, <, >, &, U+2028/U+2029; invalid UTF-8 becomes \ufffd), each of which a
CEL string literal reads the same way: no value can close the literal and append CEL of its own. A list
is [...] and a map {"key": value}, CEL's own syntax. Anything else (number, boolean, null) fails: CEL
would read it as another type (1 is an int) and no expression here needs one.
*/}}
{{- define "ap.cel.literal" -}}
{{- include "ap.cel.onlyStrings" . -}}
{{- toJson . -}}
{{- end -}}

{{- define "ap.cel.onlyStrings" -}}
{{- if kindIs "map" . -}}
{{- range . }}{{ include "ap.cel.onlyStrings" . }}{{ end -}}
{{- else if kindIs "slice" . -}}
{{- range . }}{{ include "ap.cel.onlyStrings" . }}{{ end -}}
{{- else if not (kindIs "string" .) -}}
{{- fail (printf "ap.cel.literal takes strings and lists or maps of them, not %s %v" (kindOf .) .) -}}
{{- end -}}
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
app.kubernetes.io/managed-by: {{ .ctx.Release.Service | quote }}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" | quote }}
{{- end -}}

{{/* Labels that select the pods of one component. Args: ctx, component. */}}
{{- define "ap.selectorLabels" -}}
app.kubernetes.io/name: {{ .ctx.Chart.Name | quote }}
app.kubernetes.io/instance: {{ .ctx.Release.Name | quote }}
app.kubernetes.io/component: {{ .component | quote }}
{{- end -}}

{{/* Keep policy for data that must outlive the release (see keepOnUninstall). */}}
{{- define "ap.keepAnnotation" -}}
{{- if .Values.keepOnUninstall -}}
helm.sh/resource-policy: keep
{{- end -}}
{{- end -}}

{{/* Full image reference. Args: ctx, image (key under images). Per image, `digest` (sha256:...) wins
over any tag (`<repository>@<digest>`, immutable); else its own `tag`, else images.tag, else the
chart's version. */}}
{{- define "ap.image" -}}
{{- $images := .ctx.Values.images -}}
{{- $image := index $images .image -}}
{{- $repository := $image.repository -}}
{{- if $images.registry -}}
{{- $repository = printf "%s/%s" (trimSuffix "/" $images.registry) $repository -}}
{{- end -}}
{{- with $image.digest -}}
{{- if not (regexMatch "^sha256:[a-f0-9]{64}$" .) -}}
{{- fail (printf "images.%s.digest: %q is not an image digest: sha256: and 64 lowercase hex characters (as `docker buildx imagetools inspect` or `crane digest` print it)" $.image .) -}}
{{- end -}}
{{- printf "%s@%s" $repository . -}}
{{- else -}}
{{- printf "%s:%s" $repository ($image.tag | default $images.tag | default .ctx.Chart.Version) -}}
{{- end -}}
{{- end -}}

{{/* Name of the pull Secret the chart creates from images.pullCredentials in every namespace it manages. */}}
{{- define "ap.pullCredentials.secretName" -}}
{{- printf "%s-image-pull" (include "ap.fullname" .) -}}
{{- end -}}

{{/* Every pull Secret name pods reference: images.pullSecrets, then the chart-made one (JSON list). */}}
{{- define "ap.pullCredentials.secretNames" -}}
{{- $names := .Values.images.pullSecrets | default list -}}
{{- if .Values.images.pullCredentials.username -}}
{{- $names = append $names (include "ap.pullCredentials.secretName" .) -}}
{{- end -}}
{{- $names | uniq | toJson -}}
{{- end -}}

{{- define "ap.imagePullSecrets" -}}
{{- with include "ap.pullCredentials.secretNames" . | fromJsonArray }}
imagePullSecrets:
{{- range . }}
  - name: {{ . | quote }}
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

{{/*
Every node pool as JSON: node-pools/pools.yaml (when nodePools.includeFile) with nodePools.definitions
over it. A definition replaces the file's fields it names; placement fields replace as a group (giving
labels or nodeSelectorTerms drops both from the file, likewise taints or tolerations), so a cloud pool
never keeps the kind labels by accident. Fails when no pool is defined or a workload namespace names an
unknown pool.
*/}}
{{- define "ap.pools.all" -}}
{{- $settings := .Values.nodePools -}}
{{- $pools := dict -}}
{{- if $settings.includeFile -}}
{{- $pools = (include "ap.pools.file" . | fromYaml).pools | deepCopy -}}
{{- end -}}
{{- range $name, $definition := $settings.definitions | default dict -}}
{{- $pool := index $pools $name | default dict | deepCopy -}}
{{- if or (hasKey $definition "labels") (hasKey $definition "nodeSelectorTerms") -}}
{{- $pool = omit $pool "labels" "nodeSelectorTerms" -}}
{{- end -}}
{{- if or (hasKey $definition "taints") (hasKey $definition "tolerations") -}}
{{- $pool = omit $pool "taints" "tolerations" -}}
{{- end -}}
{{- range $field, $value := $definition -}}
{{- $_ := set $pool $field $value -}}
{{- end -}}
{{- $_ := set $pools $name $pool -}}
{{- end -}}
{{- if not $pools -}}
{{- fail "nodePools.definitions: no node pool defined (nodePools.includeFile is false and definitions is empty)" -}}
{{- end -}}
{{- range $index, $namespace := .Values.namespaces.workloads -}}
{{- range $position, $pool := $namespace.pools -}}
{{- if not (hasKey $pools $pool) -}}
{{- fail (printf "namespaces.workloads[%d].pools[%d]: unknown node pool %q (defined pools: %s)" $index $position $pool (keys $pools | sortAlpha | join ", ")) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toJson $pools -}}
{{- end -}}

{{/* One pool as JSON. Args: ctx, pool, key (values key, for errors). Fails naming the key. */}}
{{- define "ap.pools.pool" -}}
{{- $pools := include "ap.pools.all" .ctx | fromJson -}}
{{- if not (hasKey $pools .pool) -}}
{{- fail (printf "%s: unknown node pool %q (defined pools: %s; see nodePools.definitions)" (.key | default "pool") .pool (keys $pools | sortAlpha | join ", ")) -}}
{{- end -}}
{{- index $pools .pool | toJson -}}
{{- end -}}

{{/* Tolerations of a pool: its own list, or one per taint. Args: ctx, pool. Output: JSON list. */}}
{{- define "ap.pools.tolerations" -}}
{{- $pool := include "ap.pools.pool" . | fromJson -}}
{{- if hasKey $pool "tolerations" -}}
{{- toJson ($pool.tolerations | default list) -}}
{{- else -}}
{{- $tolerations := list -}}
{{- range $pool.taints -}}
{{- $tolerations = append $tolerations (dict "key" .key "operator" "Equal" "value" (toString .value) "effect" .effect) -}}
{{- end -}}
{{- toJson $tolerations -}}
{{- end -}}
{{- end -}}

{{/*
Required node affinity of a pool: its nodeSelectorTerms, or one term requiring every label. A pool
with neither has no affinity ({}). Args: ctx, pool. Output: JSON object.
*/}}
{{- define "ap.pools.affinity" -}}
{{- $pool := include "ap.pools.pool" . | fromJson -}}
{{- $terms := list -}}
{{- if $pool.nodeSelectorTerms -}}
{{- $terms = $pool.nodeSelectorTerms -}}
{{- else if $pool.labels -}}
{{- $expressions := list -}}
{{- range $key, $value := $pool.labels -}}
{{- $expressions = append $expressions (dict "key" $key "operator" "In" "values" (list (toString $value))) -}}
{{- end -}}
{{- $terms = list (dict "matchExpressions" $expressions) -}}
{{- end -}}
{{- if $terms -}}
{{- toJson (dict "nodeAffinity" (dict "requiredDuringSchedulingIgnoredDuringExecution" (dict "nodeSelectorTerms" $terms))) -}}
{{- else -}}
{}
{{- end -}}
{{- end -}}

{{/*
Required node-selector terms of both lists (AND): every pair of terms merged. Either list empty =
the other. Args: a, b (lists of NodeSelectorTerm). Output: JSON list.
*/}}
{{- define "ap.pools.andNodeSelectorTerms" -}}
{{- if not .a -}}
{{- toJson (.b | default list) -}}
{{- else if not .b -}}
{{- toJson .a -}}
{{- else -}}
{{- $terms := list -}}
{{- range $left := .a -}}
{{- range $right := $.b -}}
{{- $term := dict -}}
{{- range $field := list "matchExpressions" "matchFields" -}}
{{- $joined := concat (index $left $field | default list) (index $right $field | default list) -}}
{{- if $joined -}}
{{- $_ := set $term $field $joined -}}
{{- end -}}
{{- end -}}
{{- $terms = append $terms $term -}}
{{- end -}}
{{- end -}}
{{- toJson $terms -}}
{{- end -}}
{{- end -}}

{{/*
Scheduling of a pod: the pool's placement ("" = no pool constraint) plus the component's own
nodeSelector, affinity, tolerations, priorityClassName and topologySpreadConstraints. With more than
one replica and no podAntiAffinity of its own, replicas prefer different nodes.
Args: ctx, pool, key (values key naming the pool, for errors), settings (component values, optional),
component (for the anti-affinity selector, optional), replicas (optional).
Output: pod spec lines.
*/}}
{{- define "ap.pools.placement" -}}
{{- $settings := .settings | default dict -}}
{{- $tolerations := list -}}
{{- $affinity := dict -}}
{{- if .pool -}}
{{- $tolerations = include "ap.pools.tolerations" . | fromJsonArray -}}
{{- $affinity = include "ap.pools.affinity" . | fromJson -}}
{{- end -}}
{{- $tolerations = concat $tolerations ($settings.tolerations | default list) -}}
{{- $own := deepCopy ($settings.affinity | default dict) -}}
{{- $poolTerms := dig "nodeAffinity" "requiredDuringSchedulingIgnoredDuringExecution" "nodeSelectorTerms" list $affinity -}}
{{- $ownTerms := dig "nodeAffinity" "requiredDuringSchedulingIgnoredDuringExecution" "nodeSelectorTerms" list $own -}}
{{- $terms := include "ap.pools.andNodeSelectorTerms" (dict "a" $poolTerms "b" $ownTerms) | fromJsonArray -}}
{{- $nodeAffinity := omit (get $own "nodeAffinity" | default dict) "requiredDuringSchedulingIgnoredDuringExecution" -}}
{{- if $terms -}}
{{- $_ := set $nodeAffinity "requiredDuringSchedulingIgnoredDuringExecution" (dict "nodeSelectorTerms" $terms) -}}
{{- end -}}
{{- $merged := omit $own "nodeAffinity" -}}
{{- if $nodeAffinity -}}
{{- $_ := set $merged "nodeAffinity" $nodeAffinity -}}
{{- end -}}
{{- if and .component (gt (int (.replicas | default 1)) 1) (not (hasKey $merged "podAntiAffinity")) -}}
{{- $selector := include "ap.selectorLabels" (dict "ctx" .ctx "component" .component) | fromYaml -}}
{{- $term := dict "topologyKey" "kubernetes.io/hostname" "labelSelector" (dict "matchLabels" $selector) -}}
{{- $_ := set $merged "podAntiAffinity" (dict "preferredDuringSchedulingIgnoredDuringExecution" (list (dict "weight" 100 "podAffinityTerm" $term))) -}}
{{- end -}}
{{- with $settings.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $merged }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $settings.priorityClassName }}
priorityClassName: {{ . | quote }}
{{- end }}
{{- with $settings.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
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

{{/* Secret and key of the bundled Postgres password (generated or postgres.existingSecret). */}}
{{- define "ap.database.postgresSecretName" -}}
{{- .Values.postgres.existingSecret | default (printf "%s-postgres" (include "ap.fullname" .)) -}}
{{- end -}}

{{/*
A value of an existing Secret, or a new random one. On upgrade the chart looks the Secret up and keeps
its value, so generated keys never change. An upgrade that finds the Secret gone fails instead of
generating a new value (a new fernet key would make the database's secrets unreadable) unless
secrets.regenerateMissing is true. `helm template` has no cluster: it always generates, so GitOps
installs name existing Secrets instead (README "GitOps").
Args: ctx, namespace, name, key, generate (the random value to use when nothing exists). Output: base64.
*/}}
{{- define "ap.secrets.keptValue" -}}
{{- $existing := lookup "v1" "Secret" .namespace .name -}}
{{- $data := dig "data" (dict) ($existing | default dict) -}}
{{- if hasKey $data .key -}}
{{- index $data .key -}}
{{- else if and .ctx.Release.IsUpgrade (not .ctx.Values.secrets.regenerateMissing) -}}
{{- fail (printf "Secret %s/%s (key %s) is missing but release %s is already installed: restore the Secret, name an existing one (existingSecret), or set secrets.regenerateMissing=true to generate a new value (data encrypted with the old one becomes unreadable). A client-side --dry-run cannot read Secrets: use --dry-run=server." .namespace .name .key .ctx.Release.Name) -}}
{{- else -}}
{{- .generate | b64enc -}}
{{- end -}}
{{- end -}}

{{/* Environment of every Airflow control-plane container: secrets only through secretKeyRef. */}}
{{- define "ap.airflow.secretEnv" -}}
{{- if .Values.postgres.enabled }}
{{- /* Kubernetes expands $(AIRFLOW_PLATFORM_DB_PASSWORD): the password lives in one Secret key only. */}}
- name: AIRFLOW_PLATFORM_DB_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "ap.database.postgresSecretName" . | quote }}
      key: {{ .Values.postgres.existingSecretKey | quote }}
- name: AIRFLOW__DATABASE__SQL_ALCHEMY_CONN
  value: {{ printf "postgresql+psycopg2://%s:$(AIRFLOW_PLATFORM_DB_PASSWORD)@%s:%s/%s" .Values.postgres.user (include "ap.cluster.serviceHost" (dict "ctx" . "name" (printf "%s-postgres" (include "ap.fullname" .)) "namespace" .Release.Namespace)) (include "ap.postgres.port" .) .Values.postgres.database | quote }}
{{- else }}
- name: AIRFLOW__DATABASE__SQL_ALCHEMY_CONN
  valueFrom:
    secretKeyRef:
      name: {{ .Values.externalDatabase.secretName | quote }}
      key: {{ .Values.externalDatabase.secretKey | quote }}
{{- end }}
- name: AIRFLOW__CORE__FERNET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "ap.secrets.name" (dict "ctx" . "name" "fernetKey") | quote }}
      key: {{ .Values.secrets.fernetKey.key | quote }}
- name: AIRFLOW__API_AUTH__JWT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "ap.secrets.name" (dict "ctx" . "name" "jwtSecret") | quote }}
      key: {{ .Values.secrets.jwtSecret.key | quote }}
- name: AIRFLOW__API__SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "ap.secrets.name" (dict "ctx" . "name" "apiSecretKey") | quote }}
      key: {{ .Values.secrets.apiSecretKey.key | quote }}
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

{{/* The [core] auth_manager class of airflow.auth.manager. */}}
{{- define "ap.auth.managerClass" -}}
{{- if eq .Values.airflow.auth.manager "fab" -}}
airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager
{{- else -}}
airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager
{{- end -}}
{{- end -}}

{{/* webserver_config.py of the FAB auth manager: airflow.auth.webserverConfig or database logins. */}}
{{- define "ap.auth.webserverConfig" -}}
{{- if .Values.airflow.auth.webserverConfig -}}
{{- .Values.airflow.auth.webserverConfig -}}
{{- else -}}
# Database logins; users and roles (Admin, Op, User, Viewer) live in the metadata database.
from flask_appbuilder.security.manager import AUTH_DB

AUTH_TYPE = AUTH_DB
WTF_CSRF_ENABLED = True
{{- end -}}
{{- end -}}

{{/* Volume mounts every Airflow container shares. */}}
{{- define "ap.airflow.volumeMounts" -}}
- name: config
  mountPath: /opt/airflow/airflow.cfg
  subPath: airflow.cfg
  readOnly: true
{{- if eq .Values.airflow.auth.manager "fab" }}
- name: config
  mountPath: /opt/airflow/webserver_config.py
  subPath: webserver_config.py
  readOnly: true
{{- end }}
- name: pool-presets
  mountPath: /opt/airflow/platform
  readOnly: true
- name: logs
  mountPath: /opt/airflow/logs
  {{- if eq .Values.airflow.logs.mode "hostPath" }}
  subPath: {{ .Values.airflow.logs.hostPath.subPath | quote }}
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
    sizeLimit: {{ .Values.airflow.logs.emptyDirSizeLimit | quote }}
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
  image: {{ include "ap.image" (dict "ctx" . "image" "airflow") | quote }}
  imagePullPolicy: {{ .Values.images.pullPolicy | quote }}
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

{{/* Pod labels: the component's extra podLabels, then the chart's (they win). Args: labels (ap.labels args), settings. */}}
{{- define "ap.airflow.podLabels" -}}
{{- $labels := merge (include "ap.labels" .labels | fromYaml) (.settings.podLabels | default dict) -}}
{{- toYaml $labels -}}
{{- end -}}

{{/* Pod annotations: the component's podAnnotations, then the config checksums (they win). Args: ctx, settings, extra (map, optional). */}}
{{- define "ap.airflow.extendedPodAnnotations" -}}
{{- $annotations := merge (include "ap.airflow.podAnnotations" .ctx | fromYaml) (.extra | default dict) (.settings.podAnnotations | default dict) -}}
{{- toYaml $annotations -}}
{{- end -}}

{{/* Annotations of a component's ServiceAccount. Args: settings. */}}
{{- define "ap.airflow.serviceAccountAnnotations" -}}
{{- with .settings.serviceAccount }}
{{- with .annotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Pod annotations that roll the pods when their configuration changes. */}}
{{- define "ap.airflow.podAnnotations" -}}
checksum/config: {{ include (print .Template.BasePath "/airflow/config.yaml") . | sha256sum | quote }}
checksum/presets: {{ include (print .Template.BasePath "/pools/presets.yaml") . | sha256sum | quote }}
{{- if .Values.airflow.logs.remote.enabled }}
checksum/remote-logs: {{ include "ap.remoteLogs.connection" . | sha256sum | quote }}
{{- end }}
{{- end -}}

{{/* Namespace of the demo ClickHouse pair: the first workload namespace. */}}
{{- define "ap.clickhouse.namespace" -}}
{{- (first .Values.namespaces.workloads).name -}}
{{- end -}}

{{/* ---- Operations (issue 15): remote logs, metrics, housekeeping ---- */}}

{{/* Airflow connection id of the remote log store (defined by the env var ap.remoteLogsEnv sets). */}}
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
{{- $store := .Values.airflow.logs.testObjectStore.enabled -}}
{{- with $remote.endpointUrl | default (ternary (include "ap.objectStore.endpoint" .) "" $store) -}}
{{- $_ := set $extra "endpoint_url" . -}}
{{- end -}}
{{- $style := ternary "path" $remote.addressingStyle (and $store (eq $remote.addressingStyle "auto")) -}}
{{- if ne $style "auto" -}}
{{- $_ := set $extra "config_kwargs" (dict "s3" (dict "addressing_style" $style)) -}}
{{- end -}}
{{- dict "conn_type" "aws" "extra" $extra | toJson -}}
{{- end -}}

{{/* The test object store (airflow.logs.testObjectStore): its objects' name and its S3 endpoint. */}}
{{- define "ap.objectStore.name" -}}
{{- printf "%s-object-store" (include "ap.fullname" .) -}}
{{- end -}}

{{- define "ap.objectStore.endpoint" -}}
{{- printf "http://%s.%s.svc.%s:7070" (include "ap.objectStore.name" .) .Release.Namespace .Values.clusterDomain -}}
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
      name: {{ include "ap.remoteLogs.secretName" . | quote }}
      key: connection
{{- $credentials := $remote.credentials -}}
{{- if and (not $credentials.existingSecret) .Values.airflow.logs.testObjectStore.enabled -}}
{{- $credentials = dict "existingSecret" (include "ap.objectStore.name" .) "accessKeyIdKey" "access-key-id" "secretAccessKeyKey" "secret-access-key" -}}
{{- end -}}
{{- with $credentials.existingSecret }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ . | quote }}
      key: {{ $credentials.accessKeyIdKey | quote }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ . | quote }}
      key: {{ $credentials.secretAccessKeyKey | quote }}
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

{{/* The test Prometheus (metrics.testPrometheus): its objects' name and OTLP receiver. */}}
{{- define "ap.prometheus.name" -}}
{{- printf "%s-prometheus" (include "ap.fullname" .) -}}
{{- end -}}

{{/* Series selectors the ServiceMonitor federates: metrics.serviceMonitor.matchSeries, else every series of metrics.prefix. Output: YAML list. */}}
{{- define "ap.metrics.federatedSeries" -}}
{{- $series := .Values.metrics.serviceMonitor.matchSeries | default (list (printf "{__name__=~%q}" (printf "%s_.+" .Values.metrics.prefix))) -}}
{{- toYaml $series -}}
{{- end -}}

{{/* The TCP port of the OTLP endpoint: the URL's, else the scheme's (the schema allows no IPv6 literal). */}}
{{- define "ap.metrics.otlpPort" -}}
{{- $url := urlParse (include "ap.metrics.otlpEndpoint" .) -}}
{{- $hostPort := splitList ":" $url.host -}}
{{- if gt (len $hostPort) 1 }}{{ last $hostPort }}{{ else }}{{ ternary "443" "80" (eq $url.scheme "https") }}{{ end -}}
{{- end -}}

{{/* metrics.otlpEndpoint, or the test Prometheus's OTLP receiver when that is on and nothing is set. */}}
{{- define "ap.metrics.otlpEndpoint" -}}
{{- if and (not .Values.metrics.otlpEndpoint) .Values.metrics.testPrometheus.enabled -}}
{{- printf "http://%s.%s.svc.%s:9090/api/v1/otlp/v1/metrics" (include "ap.prometheus.name" .) .Release.Namespace .Values.clusterDomain -}}
{{- else -}}
{{- .Values.metrics.otlpEndpoint -}}
{{- end -}}
{{- end -}}

{{/*
OpenTelemetry metrics export (standard OTEL_* variables, which Airflow prefers over [metrics] otel_host).
Each pod is its own instance (service.instance.id = pod name), so replicas never overwrite each other.
*/}}
{{- define "ap.metrics.env" -}}
{{- if .Values.metrics.enabled }}
- name: OTEL_EXPORTER_OTLP_METRICS_ENDPOINT
  value: {{ include "ap.metrics.otlpEndpoint" . | quote }}
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
