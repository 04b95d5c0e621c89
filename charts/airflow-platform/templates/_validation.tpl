{{/*
Cross-field checks values.schema.json cannot express. Every failure names the values key and says
what to do. `ap.validate` runs them all (from templates/validate.yaml); config.yaml runs the
airflow.config / airflow.env checks itself because it owns those options.
*/}}

{{/*
A Kubernetes quantity as a plain number (float, as a string), for comparisons: "500m" -> 0.5,
"1Gi" -> 1073741824, "1e3" -> 1000. Args: value, key (for errors). The schema has already refused
negative and malformed quantities; the check here keeps the helper safe on its own.
*/}}
{{- define "ap.validation.quantityValue" -}}
{{- $text := toString .value -}}
{{- if not (regexMatch "^[+]?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)([eE][-+]?[0-9]+|[KMGTPE]i|[numkMGTPE])?$" $text) -}}
{{- fail (printf "%s: %q is not a Kubernetes quantity (e.g. 500m, 2, 512Mi, 2Gi)" .key $text) -}}
{{- end -}}
{{- $number := regexFind "^[+]?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)" $text -}}
{{- $suffix := trimPrefix $number $text -}}
{{- if regexMatch "^[eE]" $suffix -}}
{{- float64 (trimPrefix "+" $text) -}}
{{- else -}}
{{- $scale := dict "" "1" "n" "1e-9" "u" "1e-6" "m" "1e-3" "k" "1e3" "M" "1e6" "G" "1e9" "T" "1e12" "P" "1e15" "E" "1e18"
  "Ki" "1024" "Mi" "1048576" "Gi" "1073741824" "Ti" "1099511627776" "Pi" "1125899906842624" "Ei" "1152921504606846976" -}}
{{- mulf (float64 (trimPrefix "+" $number)) (float64 (index $scale $suffix)) -}}
{{- end -}}
{{- end -}}

{{/* Fails when a lower bound exceeds its upper bound for any resource both name. Args: low, high, lowKey, highKey, reason (optional). */}}
{{- define "ap.validation.checkNotAbove" -}}
{{- $high := .high | default dict -}}
{{- range $resource, $value := (.low | default dict) -}}
{{- if hasKey $high $resource -}}
{{- $lowValue := include "ap.validation.quantityValue" (dict "value" $value "key" (printf "%s.%s" $.lowKey $resource)) | float64 -}}
{{- $highValue := include "ap.validation.quantityValue" (dict "value" (index $high $resource) "key" (printf "%s.%s" $.highKey $resource)) | float64 -}}
{{- if gt $lowValue $highValue -}}
{{- fail (printf "%s.%s (%v) is above %s.%s (%v): %s" $.lowKey $resource $value $.highKey $resource (index $high $resource) ($.reason | default "Kubernetes rejects a request above its limit")) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Requests never above limits in every resources block of the values. */}}
{{- define "ap.validation.resources" -}}
{{- $blocks := dict
  "airflow.apiServer.resources" .Values.airflow.apiServer.resources
  "airflow.scheduler.resources" .Values.airflow.scheduler.resources
  "airflow.dagProcessor.resources" .Values.airflow.dagProcessor.resources
  "airflow.triggerer.resources" .Values.airflow.triggerer.resources
  "airflow.migrateDatabase.resources" .Values.airflow.migrateDatabase.resources
  "airflow.workers.resources" .Values.airflow.workers.resources
  "postgres.resources" .Values.postgres.resources
  "clickhouse.resources" .Values.clickhouse.resources
  "airflow.logs.testObjectStore.resources" .Values.airflow.logs.testObjectStore.resources
  "metrics.testPrometheus.resources" .Values.metrics.testPrometheus.resources
  "dags.testGitServer.resources" .Values.dags.testGitServer.resources
  "housekeeping.dbClean.resources" .Values.housekeeping.dbClean.resources
  "housekeeping.logCleanup.resources" .Values.housekeeping.logCleanup.resources
  "housekeeping.orphanedPods.resources" .Values.housekeeping.orphanedPods.resources
-}}
{{- range $key, $resources := $blocks -}}
{{- include "ap.validation.checkNotAbove" (dict "low" $resources.requests "high" $resources.limits "lowKey" (printf "%s.requests" $key) "highKey" (printf "%s.limits" $key)) -}}
{{- end -}}
{{- $spaces := list (dict "key" "namespaces.workers" "space" .Values.namespaces.workers) -}}
{{- range $index, $space := .Values.namespaces.workloads -}}
{{- $spaces = append $spaces (dict "key" (printf "namespaces.workloads[%d]" $index) "space" $space) -}}
{{- end -}}
{{- range $spaces -}}
{{- $limits := .space.limitRange -}}
{{- include "ap.validation.checkNotAbove" (dict "low" $limits.defaultRequest "high" $limits.default "lowKey" (printf "%s.limitRange.defaultRequest" .key) "highKey" (printf "%s.limitRange.default" .key)) -}}
{{- $quota := .space.quota -}}
{{- $requests := dict -}}
{{- $limitsQuota := dict -}}
{{- range $name, $value := $quota -}}
{{- if hasPrefix "requests." $name }}{{ $_ := set $requests (trimPrefix "requests." $name) $value }}{{ end -}}
{{- if hasPrefix "limits." $name }}{{ $_ := set $limitsQuota (trimPrefix "limits." $name) $value }}{{ end -}}
{{- end -}}
{{- include "ap.validation.checkNotAbove" (dict "low" $requests "high" $limitsQuota "lowKey" (printf "%s.quota.requests" .key) "highKey" (printf "%s.quota.limits" .key)) -}}
{{- end -}}
{{- end -}}

{{/*
Namespaces: each one the chart manages appears once, and none is the release namespace (the control
plane) or another's. A pool runs its job pods in exactly one workload namespace (the presets give one).
*/}}
{{/*
The release name and namespace (helm install NAME -n NAMESPACE), not values. Helm accepts a dotted
release name, but Services and Deployments are named after it and must be DNS labels (the API
server refused them only at install). The release namespace gets a default-deny ingress policy,
Pod Security labels, a quota and a LimitRange: in kube-system that would cut the cluster DNS off.
*/}}
{{- define "ap.validation.release" -}}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" .Release.Name) -}}
{{- fail (printf "release name %q: the chart names Services and Deployments after it, so it must be a DNS label (lowercase letters, digits and -, no dots), e.g. airflow-platform" .Release.Name) -}}
{{- end -}}
{{- if hasPrefix "kube-" .Release.Namespace -}}
{{- fail (printf "release namespace %q: a Kubernetes system namespace; the chart puts a default-deny ingress policy, Pod Security labels and a quota on its namespace. Install into a namespace of its own: helm install -n airflow --create-namespace" .Release.Namespace) -}}
{{- end -}}
{{- end -}}

{{- define "ap.validation.namespaces" -}}
{{- $workers := .Values.namespaces.workers.name -}}
{{- if eq $workers .Release.Namespace -}}
{{- fail (printf "namespaces.workers.name: %q is the release namespace (the control plane); choose another namespace" $workers) -}}
{{- end -}}
{{- $seen := dict -}}
{{- $poolOwner := dict -}}
{{- range $index, $space := .Values.namespaces.workloads -}}
{{- $key := printf "namespaces.workloads[%d].name" $index -}}
{{- if eq $space.name $.Release.Namespace -}}
{{- fail (printf "%s: %q is the release namespace (the control plane); job pods need their own namespace" $key $space.name) -}}
{{- end -}}
{{- if eq $space.name $workers -}}
{{- fail (printf "%s: %q is also namespaces.workers.name; job pods and executor worker pods need separate namespaces" $key $space.name) -}}
{{- end -}}
{{- if hasKey $seen $space.name -}}
{{- fail (printf "%s: %q is listed twice (also namespaces.workloads[%v].name); list each namespace once with all its pools" $key $space.name (index $seen $space.name)) -}}
{{- end -}}
{{- $_ := set $seen $space.name $index -}}
{{- range $pool := $space.pools -}}
{{- if hasKey $poolOwner $pool -}}
{{- fail (printf "namespaces.workloads[%d].pools: pool %q is already in namespace %q; each pool runs its job pods in exactly one namespace" $index $pool (index $poolOwner $pool)) -}}
{{- end -}}
{{- $_ := set $poolOwner $pool $space.name -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* A mutable tag must be pulled every time, or nodes keep running whatever they pulled first. */}}
{{- define "ap.validation.images" -}}
{{- if and (eq (lower .Values.images.tag) "latest") (ne .Values.images.pullPolicy "Always") -}}
{{- fail (printf "images.tag: %q is a mutable tag and images.pullPolicy is %s (nodes would keep a stale image): pin a tag (scripts/images.py tag) or set images.pullPolicy=Always" .Values.images.tag .Values.images.pullPolicy) -}}
{{- end -}}
{{- range $key, $image := .Values.images -}}
{{- if and (kindIs "map" $image) (hasKey $image "repository") -}}
{{- if and (eq (lower ($image.tag | default "")) "latest") (not $image.digest) (ne $.Values.images.pullPolicy "Always") -}}
{{- fail (printf "images.%s.tag: %q is a mutable tag and images.pullPolicy is %s (nodes would keep a stale image): pin a tag or a digest, or set images.pullPolicy=Always" $key $image.tag $.Values.images.pullPolicy) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- with .Values.images.pullCredentials -}}
{{- if and .username (not .password) -}}
{{- fail "images.pullCredentials.password: required with images.pullCredentials.username (the pull Secret would hold no password)" -}}
{{- end -}}
{{- if and .password (not .username) -}}
{{- fail "images.pullCredentials.username: required with images.pullCredentials.password" -}}
{{- end -}}
{{- if and .username (not (.registry | default $.Values.images.registry)) -}}
{{- fail "images.pullCredentials.registry: required when images.registry is empty (the registry host the credential is for, e.g. registry.example.com)" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Pod Security checks of one securityContext, pod or container (Kubernetes Pod Security Standards):
baseline refuses Unconfined seccomp/AppArmor profiles, Windows host processes and SELinux options
beyond the container types; restricted also uid 0. Args: context, key (its values key), level, why.
*/}}
{{- define "ap.validation.podSecurity.context" -}}
{{- $context := .context | default dict -}}
{{- if ne .level "privileged" -}}
{{- if eq (dig "seccompProfile" "type" "" $context) "Unconfined" -}}
{{- fail (printf "%s.seccompProfile.type: Unconfined is not allowed (%s)" .key .why) -}}
{{- end -}}
{{- if eq (dig "appArmorProfile" "type" "" $context) "Unconfined" -}}
{{- fail (printf "%s.appArmorProfile.type: Unconfined is not allowed (%s)" .key .why) -}}
{{- end -}}
{{- if dig "windowsOptions" "hostProcess" false $context -}}
{{- fail (printf "%s.windowsOptions.hostProcess: must not be true (%s)" .key .why) -}}
{{- end -}}
{{- with $context.seLinuxOptions -}}
{{- if or .user .role -}}
{{- fail (printf "%s.seLinuxOptions: user and role must not be set (%s)" $.key $.why) -}}
{{- end -}}
{{- if and .type (not (has .type (list "container_t" "container_init_t" "container_kvm_t" "container_engine_t"))) -}}
{{- fail (printf "%s.seLinuxOptions.type: %s is not allowed, only container_t, container_init_t, container_kvm_t or container_engine_t (%s)" $.key .type $.why) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and (eq .level "restricted") (hasKey $context "runAsUser") (eq (toString $context.runAsUser) "0") -}}
{{- fail (printf "%s.runAsUser: 0 (root) is not allowed (%s)" .key .why) -}}
{{- end -}}
{{- end -}}

{{/*
Pod Security checks of a container's securityContext within its pod's: what the job pod presets and
the Airflow components' extra containers must pass (one copy for both). Args: pod, podKey (the pod
securityContext and its values key), container, containerKey, level (privileged, baseline,
restricted), why (the reason in messages).
*/}}
{{- define "ap.validation.podSecurity.container" -}}
{{- $pod := .pod | default dict -}}
{{- $container := .container | default dict -}}
{{- $containerKey := .containerKey -}}
{{- $why := .why -}}
{{- include "ap.validation.podSecurity.context" (dict "context" $container "key" $containerKey "level" .level "why" $why) -}}
{{- if ne .level "privileged" -}}
{{- $baselineCaps := list "AUDIT_WRITE" "CHOWN" "DAC_OVERRIDE" "FOWNER" "FSETID" "KILL" "MKNOD" "NET_BIND_SERVICE" "SETFCAP" "SETGID" "SETPCAP" "SETUID" "SYS_CHROOT" -}}
{{- if $container.privileged -}}
{{- fail (printf "%s.privileged: must not be true (%s)" $containerKey $why) -}}
{{- end -}}
{{- range $capability := dig "capabilities" "add" (list) $container -}}
{{- if not (has (upper (trimPrefix "CAP_" (upper $capability))) $baselineCaps) -}}
{{- fail (printf "%s.capabilities.add: %s is not allowed (%s)" $containerKey $capability $why) -}}
{{- end -}}
{{- end -}}
{{- if and (hasKey $container "procMount") (ne (toString $container.procMount) "Default") -}}
{{- fail (printf "%s.procMount: must be Default (%s)" $containerKey $why) -}}
{{- end -}}
{{- end -}}
{{- if eq .level "restricted" -}}
{{- $nonRoot := or (eq (toString (dig "runAsNonRoot" "" $container)) "true") (and (eq (toString (dig "runAsNonRoot" "" $pod)) "true") (ne (toString (dig "runAsNonRoot" "" $container)) "false")) -}}
{{- if not $nonRoot -}}
{{- fail (printf "%s.runAsNonRoot: must be true (in %s or %s) (%s)" $containerKey $containerKey .podKey $why) -}}
{{- end -}}
{{- $seccomp := dig "seccompProfile" "type" (dig "seccompProfile" "type" "" $pod) $container -}}
{{- if not (has $seccomp (list "RuntimeDefault" "Localhost")) -}}
{{- fail (printf "%s.seccompProfile.type: must be RuntimeDefault or Localhost (in %s or %s) (%s)" $containerKey $containerKey .podKey $why) -}}
{{- end -}}
{{- if ne (toString (dig "allowPrivilegeEscalation" "" $container)) "false" -}}
{{- fail (printf "%s.allowPrivilegeEscalation: must be false (%s)" $containerKey $why) -}}
{{- end -}}
{{- if not (has "ALL" (dig "capabilities" "drop" (list) $container)) -}}
{{- fail (printf "%s.capabilities.drop: must contain ALL (%s)" $containerKey $why) -}}
{{- end -}}
{{- range $capability := dig "capabilities" "add" (list) $container -}}
{{- if ne (upper (trimPrefix "CAP_" (upper $capability))) "NET_BIND_SERVICE" -}}
{{- fail (printf "%s.capabilities.add: %s is not allowed, only NET_BIND_SERVICE (%s)" $containerKey $capability $why) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Job pod presets must pass the Pod Security level of every workload namespace, or every
KubernetesPodOperator task using them is refused by the API server.
*/}}
{{- define "ap.validation.jobPresets" -}}
{{- $values := .Values -}}
{{- $pod := $values.presets.podDefaults.securityContext | default dict -}}
{{- $container := $values.presets.podDefaults.containerSecurityContext | default dict -}}
{{- $podKey := "presets.podDefaults.securityContext" -}}
{{- $containerKey := "presets.podDefaults.containerSecurityContext" -}}
{{- range $values.namespaces.workloads -}}
{{- $level := .podSecurityLevel | default $values.namespaces.podSecurityLevel -}}
{{- $why := printf "namespace %s enforces Pod Security %q" .name $level -}}
{{- include "ap.validation.podSecurity.context" (dict "context" $pod "key" $podKey "level" $level "why" $why) -}}
{{- include "ap.validation.podSecurity.container" (dict "pod" $pod "podKey" $podKey "container" $container "containerKey" $containerKey "level" $level "why" $why) -}}
{{- end -}}
{{- end -}}

{{/*
The Airflow components' extra containers, init containers and volumes run in the component's pod, in
the release or the worker namespace, whose Pod Security level is namespaces.podSecurityLevel: they
must pass it as the chart's own containers do. Checked here whether or not the namespace carries the
label (namespaces.release.podSecurityLabels=false, namespaces.create=false), so a sidecar asking for
privileges is refused at render instead of being admitted, or refused only when the pod is created.
Only namespaces.podSecurityLevel=privileged (warned about in NOTES) lets them ask.
*/}}
{{- define "ap.validation.extraContainers" -}}
{{- $level := .Values.namespaces.podSecurityLevel -}}
{{- $pod := include "ap.podSecurityContext" (dict "ctx" . "uid" 50000) | fromYaml -}}
{{- range $component := list "apiServer" "scheduler" "dagProcessor" "triggerer" "migrateDatabase" "workers" -}}
{{- $settings := index $.Values.airflow $component -}}
{{- $namespace := ternary (include "ap.workers.namespace" $) $.Release.Namespace (eq $component "workers") -}}
{{- $why := printf "namespace %s enforces Pod Security %q: namespaces.podSecurityLevel" $namespace $level -}}
{{- range $list := list "extraInitContainers" "extraContainers" -}}
{{- range $index, $container := index $settings $list | default list -}}
{{- $key := printf "airflow.%s.%s[%d]" $component $list $index -}}
{{- include "ap.validation.podSecurity.container" (dict "pod" $pod "podKey" "the pod securityContext the chart sets" "container" $container.securityContext "containerKey" (printf "%s.securityContext" $key) "level" $level "why" $why) -}}
{{- if ne $level "privileged" -}}
{{- range $portIndex, $port := $container.ports | default list -}}
{{- if $port.hostPort -}}
{{- fail (printf "%s.ports[%d].hostPort: a port on the node is not allowed (%s); reach the container through a Service instead" $key $portIndex $why) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if ne $level "privileged" -}}
{{- range $index, $volume := $settings.extraVolumes | default list -}}
{{- if hasKey $volume "hostPath" -}}
{{- fail (printf "airflow.%s.extraVolumes[%d].hostPath: a hostPath volume is not allowed (%s); use a persistentVolumeClaim, configMap, secret or emptyDir" $component $index $why) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
An extension point's names must not collide with the chart's nor with each other: Kubernetes refuses
two containers of a pod (init containers included) or two volumes with one name and two mounts of a
container at one path, and the API server would only say so at install. Called by each component's
template, which knows the chart's own names. Args: key (airflow.<component>), settings (its values),
containers, volumes, mountPaths (the chart's container names, volume names and main container mount
paths).
*/}}
{{- define "ap.validation.extraNames" -}}
{{- $taken := dict -}}
{{- range .containers }}{{ $_ := set $taken . "a container of the chart" }}{{ end -}}
{{- range $list := list "extraInitContainers" "extraContainers" -}}
{{- range $index, $container := index $.settings $list | default list -}}
{{- $key := printf "%s.%s[%d].name" $.key $list $index -}}
{{- $name := toString $container.name -}}
{{- if hasKey $taken $name -}}
{{- fail (printf "%s: %q is already the name of %s; every container and init container of a pod needs its own name" $key $name (index $taken $name)) -}}
{{- end -}}
{{- $_ := set $taken $name $key -}}
{{- end -}}
{{- end -}}
{{- $taken = dict -}}
{{- range .volumes }}{{ $_ := set $taken . "a volume of the chart" }}{{ end -}}
{{- range $index, $volume := .settings.extraVolumes | default list -}}
{{- $key := printf "%s.extraVolumes[%d].name" $.key $index -}}
{{- $name := toString $volume.name -}}
{{- if hasKey $taken $name -}}
{{- fail (printf "%s: %q is already the name of %s; choose another name" $key $name (index $taken $name)) -}}
{{- end -}}
{{- $_ := set $taken $name $key -}}
{{- end -}}
{{- $taken = dict -}}
{{- range .mountPaths }}{{ $_ := set $taken (clean .) (printf "a mount of the chart (%s)" .) }}{{ end -}}
{{- range $index, $mount := .settings.extraVolumeMounts | default list -}}
{{- $key := printf "%s.extraVolumeMounts[%d].mountPath" $.key $index -}}
{{- $path := clean (toString $mount.mountPath) -}}
{{- if hasKey $taken $path -}}
{{- fail (printf "%s: %q is already %s; mount somewhere else (a directory inside it works)" $key $mount.mountPath (index $taken $path)) -}}
{{- end -}}
{{- $_ := set $taken $path $key -}}
{{- end -}}
{{- end -}}

{{/*
A Prometheus duration (schema-checked: 1h30m, 500ms; units y w d h m s ms in that order) in
milliseconds, as a float (a 9-digit count of years does not fit an int64).
*/}}
{{- define "ap.validation.durationMillis" -}}
{{- $millis := dict "y" 31536000000.0 "w" 604800000.0 "d" 86400000.0 "h" 3600000.0 "m" 60000.0 "s" 1000.0 "ms" 1.0 -}}
{{- $total := 0.0 -}}
{{- range regexFindAll "[0-9]+(ms|y|w|d|h|m|s)" . -1 -}}
{{- $unit := regexFind "[a-z]+$" . -}}
{{- $total = addf $total (mulf (float64 (trimSuffix $unit .)) (index $millis $unit)) -}}
{{- end -}}
{{- $total -}}
{{- end -}}

{{/*
metrics.serviceMonitor: it scrapes the chart's Prometheus, so that must run; a timeout above the
interval makes prometheus-operator drop the ServiceMonitor without a word at install; its labels add
to the chart's, never replace them.
*/}}
{{- define "ap.validation.metrics" -}}
{{- $monitor := .Values.metrics.serviceMonitor -}}
{{- if $monitor.enabled -}}
{{- $missing := list -}}
{{- if not .Values.metrics.enabled }}{{ $missing = append $missing "metrics.enabled" }}{{ end -}}
{{- if not .Values.metrics.testPrometheus.enabled }}{{ $missing = append $missing "metrics.testPrometheus.enabled" }}{{ end -}}
{{- with $missing -}}
{{- fail (printf "metrics.serviceMonitor.enabled needs %s: true (the ServiceMonitor scrapes the chart's Prometheus at /federate, which relays the pushed metrics). A Prometheus with an OTLP receiver needs no ServiceMonitor: set metrics.otlpEndpoint to it instead" (join " and " .)) -}}
{{- end -}}
{{- if and $monitor.interval $monitor.scrapeTimeout -}}
{{- if gt (include "ap.validation.durationMillis" $monitor.scrapeTimeout | float64) (include "ap.validation.durationMillis" $monitor.interval | float64) -}}
{{- fail (printf "metrics.serviceMonitor.scrapeTimeout: %s is above metrics.serviceMonitor.interval (%s); Prometheus refuses a timeout above the interval" $monitor.scrapeTimeout $monitor.interval) -}}
{{- end -}}
{{- end -}}
{{- $chartLabels := include "ap.labels" (dict "ctx" . "component" "prometheus") | fromYaml -}}
{{- range $key, $_ := $monitor.labels -}}
{{- if hasKey $chartLabels $key -}}
{{- fail (printf "metrics.serviceMonitor.labels: %q is a label the chart sets itself; choose another key" $key) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
A CronJob schedule's fields within their ranges: the schema checks the shape only, and Kubernetes
refused "61 * * * *" or a weekday 8 at install, after the rest of the release was applied. Fields:
minute 0-59, hour 0-23, day of month 1-31, month 1-12 (or JAN-DEC), day of week 0-6 (or SUN-SAT);
each a list of *, ? (days only), N or N-M, optionally /STEP. Args: key, value.
*/}}
{{- define "ap.validation.cronSchedule" -}}
{{- if not (hasPrefix "@" .value) -}}
{{- $fields := splitList " " .value -}}
{{- $names := list "minute" "hour" "day of month" "month" "day of week" -}}
{{- $lows := list 0 0 1 1 0 -}}
{{- $highs := list 59 23 31 12 6 -}}
{{- $aliases := list dict dict dict
  (dict "jan" 1 "feb" 2 "mar" 3 "apr" 4 "may" 5 "jun" 6 "jul" 7 "aug" 8 "sep" 9 "oct" 10 "nov" 11 "dec" 12)
  (dict "sun" 0 "mon" 1 "tue" 2 "wed" 3 "thu" 4 "fri" 5 "sat" 6) -}}
{{- range $index, $field := $fields -}}
{{- $low := index $lows $index -}}
{{- $high := index $highs $index -}}
{{- $what := printf "%s: %q: the %s field %q" $.key $.value (index $names $index) $field -}}
{{- range $item := splitList "," $field -}}
{{- $parts := splitList "/" $item -}}
{{- if or (gt (len $parts) 2) (eq (first $parts) "") -}}
{{- fail (printf "%s is not *, N, N-M or one of them /STEP" $what) -}}
{{- end -}}
{{- if eq (len $parts) 2 -}}
{{- if not (and (regexMatch "^[0-9]+$" (last $parts)) (gt (atoi (last $parts)) 0)) -}}
{{- fail (printf "%s has step %q: a whole number above 0" $what (last $parts)) -}}
{{- end -}}
{{- end -}}
{{- $range := first $parts -}}
{{- if not (or (eq $range "*") (and (eq $range "?") (has $index (list 2 4)))) -}}
{{- $bounds := splitList "-" $range -}}
{{- if gt (len $bounds) 2 -}}
{{- fail (printf "%s is not *, N, N-M or one of them /STEP" $what) -}}
{{- end -}}
{{- $numbers := list -}}
{{- range $bound := $bounds -}}
{{- $number := -1 -}}
{{- if regexMatch "^[0-9]{1,2}$" $bound -}}
{{- $number = atoi $bound -}}
{{- else if hasKey (index $aliases $index) (lower $bound) -}}
{{- $number = index (index $aliases $index) (lower $bound) -}}
{{- end -}}
{{- if or (lt $number $low) (gt $number $high) -}}
{{- fail (printf "%s: %q is outside %d-%d" $what $bound $low $high) -}}
{{- end -}}
{{- $numbers = append $numbers $number -}}
{{- end -}}
{{- if and (eq (len $numbers) 2) (gt (index $numbers 0) (index $numbers 1)) -}}
{{- fail (printf "%s: the range %q runs backwards" $what $range) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Every enabled housekeeping CronJob's schedule (ap.validation.cronSchedule). */}}
{{- define "ap.validation.housekeeping" -}}
{{- range $job, $settings := .Values.housekeeping -}}
{{- if $settings.enabled -}}
{{- include "ap.validation.cronSchedule" (dict "key" (printf "housekeeping.%s.schedule" $job) "value" $settings.schedule) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Every cross-field check of the chart (templates/validate.yaml). */}}
{{- define "ap.validation.all" -}}
{{- include "ap.validation.release" . -}}
{{- include "ap.validation.namespaces" . -}}
{{- include "ap.validation.images" . -}}
{{- include "ap.validation.resources" . -}}
{{- include "ap.validation.jobPresets" . -}}
{{- include "ap.validation.extraContainers" . -}}
{{- include "ap.validation.metrics" . -}}
{{- include "ap.validation.housekeeping" . -}}
{{- end -}}

{{/* An IPv4 address as an integer. Args: the dotted address. */}}
{{- define "ap.validation.ipv4Number" -}}
{{- $number := 0 -}}
{{- range splitList "." . }}{{ $number = add (mul $number 256) (atoi .) }}{{ end -}}
{{- $number -}}
{{- end -}}

{{/* "true" when an IPv4 CIDR contains an address. Args: cidr, ip. IPv6 CIDRs never contain it. */}}
{{- define "ap.validation.cidrContains" -}}
{{- if regexMatch "^[0-9.]+/[0-9]+$" .cidr -}}
{{- $parts := splitList "/" .cidr -}}
{{- $block := 1 -}}
{{- range until (sub 32 (atoi (index $parts 1)) | int) }}{{ $block = mul $block 2 }}{{ end -}}
{{- $network := include "ap.validation.ipv4Number" (index $parts 0) | atoi -}}
{{- $address := include "ap.validation.ipv4Number" .ip | atoi -}}
{{- if eq (div $network $block) (div $address $block) }}true{{ end -}}
{{- end -}}
{{- end -}}

{{/*
An egress allow-list may open destinations, but not the cloud metadata address by accident: an
ipBlock containing 169.254.169.254 must list it (or a block around it) in `except`.
Args: key (values key), allow (list of NetworkPolicyEgressRules).
*/}}
{{- define "ap.validation.egressAllow" -}}
{{- $metadata := "169.254.169.254" -}}
{{- range $ruleIndex, $rule := .allow -}}
{{- range $peerIndex, $peer := $rule.to | default list -}}
{{- with $peer.ipBlock -}}
{{- if include "ap.validation.cidrContains" (dict "cidr" .cidr "ip" $metadata) -}}
{{- $excepted := false -}}
{{- range .except | default list }}{{ if include "ap.validation.cidrContains" (dict "cidr" . "ip" $metadata) }}{{ $excepted = true }}{{ end }}{{ end -}}
{{- if not $excepted -}}
{{- fail (printf "%s[%d].to[%d].ipBlock: %s includes the cloud metadata address %s; add it to except (e.g. except: [169.254.169.254/32])" $.key $ruleIndex $peerIndex .cidr $metadata) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* An IntOrString value: numbers as integers (never 1e+07), strings quoted. */}}
{{- define "ap.validation.intOrString" -}}
{{- if kindIs "string" . -}}{{ quote . }}{{- else -}}{{ int64 . }}{{- end -}}
{{- end -}}
