{{/*
The airflow.cfg options the chart owns, as JSON {section: {option: value}}: the platform depends on
them, so they override airflow.config and airflow.env may not set them. The secret options
(fernet_key, sql_alchemy_conn, jwt_secret, secret_key) are owned too: they arrive as secretKeyRef env.
*/}}
{{- define "ap.airflow.ownedConfig" -}}
{{- $fullname := include "ap.fullname" . -}}
{{- $image := include "ap.image" (dict "ctx" . "image" "airflow") -}}
{{- $owned := dict
  "core" (dict
    "executor" "KubernetesExecutor"
    "dags_folder" "/opt/airflow/dags"
    "execution_api_server_url" (printf "%s/execution/" (include "ap.apiServer.url" .))
    "auth_manager" (include "ap.auth.managerClass" .))
  "kubernetes_executor" (dict
    "namespace" (include "ap.workers.namespace" .)
    "multi_namespace_mode" "False"
    "pod_template_file" "/opt/airflow/pod_templates/pod_template_file.yaml"
    "worker_container_repository" (regexReplaceAll ":[^:/]+$" $image "")
    "worker_container_tag" (regexFind "[^:]+$" $image))
  "logging" (dict "base_log_folder" "/opt/airflow/logs")
  "dag_processor" (dict "dag_bundle_config_list" (include "ap.bundles.configList" .))
-}}
{{- if eq .Values.airflow.auth.manager "fab" -}}
{{- $_ := set $owned "fab" (dict "config_file" "/opt/airflow/webserver_config.py") -}}
{{- else -}}
{{- $_ := set $owned.core "simple_auth_manager_users" "admin:admin" -}}
{{- $_ := set $owned.core "simple_auth_manager_passwords_file" "/opt/airflow/auth/passwords.json" -}}
{{- end -}}
{{- with include "ap.apiServer.baseUrl" . -}}
{{- $_ := set $owned "api" (dict "base_url" .) -}}
{{- end -}}
{{- toJson $owned -}}
{{- end -}}

{{/* Secret options: set only through the chart's Secrets (never in the airflow.cfg ConfigMap). */}}
{{- define "ap.airflow.secretOptions" -}}
{{- toJson (dict "core" (list "fernet_key" "sql_alchemy_conn") "database" (list "sql_alchemy_conn") "api_auth" (list "jwt_secret") "api" (list "secret_key")) -}}
{{- end -}}

{{/*
Airflow's own word on secrets: the options its config.yml marks `sensitive: true` that the name pattern
below misses (their values may carry credentials), and options the pattern matches that Airflow does
not consider sensitive (paths, class names, lengths). tests/chart/test_airflow_config.py checks both
lists against the pinned Airflow's config.yml.
*/}}
{{- define "ap.airflow.sensitiveOptions" -}}
{{- toJson (dict "core" (list "asset_manager_kwargs") "database" (list "sql_alchemy_engine_args") "logging" (list "remote_task_handler_kwargs") "secrets" (list "backend_kwargs")) -}}
{{- end -}}
{{- define "ap.airflow.notSecretOptions" -}}
{{- toJson (list "core.simple_auth_manager_passwords_file" "database.sql_alchemy_connect_args" "database.sql_alchemy_connect_args_async" "logging.secret_mask_adapter" "logging.min_length_masked_secret" "workers.secrets_backend") -}}
{{- end -}}

{{/*
Whether [section] option holds a secret (args: section, option; both lower case): Airflow's sensitive
options and every name matching ap.airflow.secretOptionPattern, except ap.airflow.notSecretOptions.
Renders "true" or nothing.
*/}}
{{- define "ap.airflow.isSecretOption" -}}
{{- $sensitive := include "ap.airflow.sensitiveOptions" .ctx | fromJson -}}
{{- $notSecret := include "ap.airflow.notSecretOptions" .ctx | fromJsonArray -}}
{{- if has .option (index $sensitive .section | default list) -}}true
{{- else if and (regexMatch (include "ap.airflow.secretOptionPattern" .ctx) .option) (not (has (printf "%s.%s" .section .option) $notSecret)) -}}true
{{- end -}}
{{- end -}}

{{/*
Option names that hold secrets whatever their section (smtp_password, *_password, *secret*, *token*,
api keys, access keys, private keys (not jwt_private_key_path), credentials, sentry_dsn, ...).
*/}}
{{- define "ap.airflow.secretOptionPattern" -}}
(?i)(password|passwd|secret|fernet_key|sql_alchemy_conn|token|credential|api_?key|access_?key|private_?key$|_dsn$)
{{- end -}}

{{/*
airflow.config with option names lower-cased (Airflow reads them case-insensitively), as JSON.
Fails on secret options, on options the chart sets itself (ap.airflow.ownedConfig, and those of
ap.airflow.featureConfig while their feature is on: a value there would be silently replaced), on an
option given twice in different case and on multi-line values.
*/}}
{{- define "ap.airflow.userConfig" -}}
{{- $named := include "ap.airflow.secretOptions" . | fromJson -}}
{{- $chartSet := mergeOverwrite (include "ap.airflow.featureConfig" . | fromYaml) (include "ap.airflow.ownedConfig" . | fromJson) -}}
{{- $hints := dict "api" "airflow.baseUrl or airflow.apiServer.ingress" "logging" "airflow.logs" "metrics" "metrics" "dag_processor" "dags" -}}
{{- $config := dict -}}
{{- range $section, $options := .Values.airflow.config -}}
{{- $normal := dict -}}
{{- range $option, $value := $options -}}
{{- $key := printf "airflow.config.%s.%s" $section $option -}}
{{- $lower := lower $option -}}
{{- if or (has $lower (index $named $section | default list)) (include "ap.airflow.isSecretOption" (dict "ctx" $ "section" (lower $section) "option" $lower)) -}}
{{- fail (printf "%s: secrets must not be set in airflow.config (it is a ConfigMap); use the secrets section, externalDatabase.secretName or airflow.env with valueFrom.secretKeyRef" $key) -}}
{{- end -}}
{{- if and (eq $section "dag_processor") (eq $lower "dag_bundle_config_list") -}}
{{- fail (printf "%s: DAG bundles are configured under dags (dags.platformBundle, dags.bundles)" $key) -}}
{{- end -}}
{{- if hasKey (index $chartSet $section | default dict) $lower -}}
{{- fail (printf "%s: [%s] %s is set by the chart (the platform depends on it); remove it from airflow.config%s" $key $section $lower (ternary (printf " and use %s" (index $hints $section | default "")) "" (hasKey $hints $section))) -}}
{{- end -}}
{{- if hasKey $normal $lower -}}
{{- fail (printf "%s: option %q is given twice (option names are case-insensitive)" $key $lower) -}}
{{- end -}}
{{- $text := toString $value -}}
{{- if kindIs "float64" $value -}}
{{- if eq $value (floor $value) -}}{{- $text = printf "%d" (int64 $value) -}}{{- end -}}
{{- end -}}
{{- if regexMatch "[\r\n]" $text -}}
{{- fail (printf "%s: the value must be a single line (a newline would add options to airflow.cfg)" $key) -}}
{{- end -}}
{{- $_ := set $normal $lower $text -}}
{{- end -}}
{{- $_ := set $config $section $normal -}}
{{- end -}}
{{- toJson $config -}}
{{- end -}}

{{/*
airflow.env and every component's extraEnv must not set what the chart owns (AIRFLOW__<SECTION>__<OPTION>
of an owned option, in any case, also with _CMD/_SECRET; AIRFLOW_CONFIG, which would replace the whole
airflow.cfg) nor carry a secret as a plain value: secrets come from valueFrom.
*/}}
{{- define "ap.airflow.validateEnv" -}}
{{- $lists := list (list "airflow.env" .Values.airflow.env) -}}
{{- range $component := list "apiServer" "scheduler" "dagProcessor" "triggerer" "migrateDatabase" "workers" -}}
{{- $lists = append $lists (list (printf "airflow.%s.extraEnv" $component) (index $.Values.airflow $component "extraEnv")) -}}
{{- end -}}
{{- range $lists -}}
{{- include "ap.airflow.validateEnvList" (dict "ctx" $ "path" (index . 0) "env" (index . 1)) -}}
{{- end -}}
{{- range $component := list "apiServer" "scheduler" "dagProcessor" "triggerer" "migrateDatabase" "workers" -}}
{{- include "ap.airflow.validateEnvFrom" (dict "path" (printf "airflow.%s.extraEnvFrom" $component) "sources" (index $.Values.airflow $component "extraEnvFrom")) -}}
{{- end -}}
{{- end -}}

{{/* Variable names the chart sets itself or that would replace its airflow.cfg (lowercase, JSON list). */}}
{{- define "ap.airflow.reservedEnv" -}}
{{- list "airflow_home" "airflow_config" "airflow_platform_presets" "pythondontwritebytecode" | toJson -}}
{{- end -}}

{{/*
extraEnvFrom turns every key of a ConfigMap or Secret into a variable named prefix + key; the keys
live in the cluster, so only the prefix can be checked here. Refused, as extraEnv's names are: a
prefix starting with AIRFLOW__ (every key would be an Airflow option, the ones the chart owns
included) and a prefix some key could complete into a reserved name (AIRFLOW_ + _CORE__EXECUTOR,
AIRFLOW_CONF + IG). No prefix is allowed: see values.yaml airflow.<component>.extraEnvFrom.
Args: path (its values key), sources (EnvFromSource objects).
*/}}
{{- define "ap.airflow.validateEnvFrom" -}}
{{- $reserved := prepend (include "ap.airflow.reservedEnv" . | fromJsonArray) "airflow__" -}}
{{- range $index, $source := .sources | default list -}}
{{- $key := printf "%s[%d].prefix" $.path $index -}}
{{- $prefix := toString ($source.prefix | default "") -}}
{{- $what := ternary (printf "Secret %s" (dig "secretRef" "name" "" $source)) (printf "ConfigMap %s" (dig "configMapRef" "name" "" $source)) (hasKey $source "secretRef") -}}
{{- if hasPrefix "airflow__" (lower $prefix) -}}
{{- fail (printf "%s: %q makes every key of the %s an Airflow option (AIRFLOW__<SECTION>__<OPTION>), including the ones the chart owns; set options through airflow.config, or one at a time through extraEnv (secrets with valueFrom.secretKeyRef)" $key $prefix $what) -}}
{{- end -}}
{{- range $name := $reserved -}}
{{- if and $prefix (hasPrefix (lower $prefix) $name) -}}
{{- fail (printf "%s: %q is the start of %s, which the chart reserves: a key of the %s could complete it; use a prefix of your own (e.g. TEAM_, or AIRFLOW_CONN_ / AIRFLOW_VAR_ for connections and variables)" $key $prefix (ternary "AIRFLOW__<SECTION>__<OPTION> (Airflow options)" (upper $name) (eq $name "airflow__")) $what) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* One list of EnvVar objects (see ap.airflow.validateEnv). Args: ctx, path (its values key), env. */}}
{{- define "ap.airflow.validateEnvList" -}}
{{- $owned := include "ap.airflow.ownedConfig" .ctx | fromJson -}}
{{- $secretOptions := include "ap.airflow.secretOptions" .ctx | fromJson -}}
{{- $reserved := include "ap.airflow.reservedEnv" .ctx | fromJsonArray -}}
{{- $seen := dict -}}
{{- $path := .path -}}
{{- range $index, $variable := .env | default list -}}
{{- $key := printf "%s[%d]" $path $index -}}
{{- $name := toString $variable.name -}}
{{- $lower := lower $name -}}
{{- if hasKey $seen $name -}}
{{- fail (printf "%s.name: %s is set twice (also %s[%v])" $key $name $path (index $seen $name)) -}}
{{- end -}}
{{- $_ := set $seen $name $index -}}
{{- if has $lower $reserved -}}
{{- fail (printf "%s.name: %s is set by the chart" $key $name) -}}
{{- end -}}
{{- if hasPrefix "airflow__" $lower -}}
{{- $parts := splitList "__" (trimPrefix "airflow__" $lower) -}}
{{- if eq (len $parts) 2 -}}
{{- $section := index $parts 0 -}}
{{- $option := regexReplaceAll "_(cmd|secret)$" (index $parts 1) "" -}}
{{- if or (hasKey (index $owned $section | default dict) $option) (has $option (index $secretOptions $section | default list)) -}}
{{- fail (printf "%s.name: %s sets [%s] %s, which the chart owns (the platform depends on it; see values.yaml airflow.config)" $key $name $section $option) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and (hasKey $variable "value") (toString $variable.value) -}}
{{- $option := dict "secret" (or (regexMatch (include "ap.airflow.secretOptionPattern" $.ctx) $lower) (regexMatch "(token|credential|private_?key|api_?key|access_?key)" $lower) (hasPrefix "airflow_conn_" $lower)) -}}
{{- $parts := splitList "__" (trimPrefix "airflow__" $lower) -}}
{{- if and (hasPrefix "airflow__" $lower) (eq (len $parts) 2) -}}
{{- $_ := set $option "secret" (include "ap.airflow.isSecretOption" (dict "ctx" $.ctx "section" (index $parts 0) "option" (index $parts 1))) -}}
{{- end -}}
{{- if $option.secret -}}
{{- fail (printf "%s.value: %s looks like a secret and must not be a plain value (it would be readable in the pod spec); use valueFrom.secretKeyRef" $key $name) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
