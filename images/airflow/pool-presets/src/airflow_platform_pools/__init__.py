"""Pod settings for the platform's node pools, for DAG authors.

The Helm chart renders the presets (namespace, tolerations, node affinity, default resources, service
account, pod defaults, Airflow pools) from `node-pools/pools.yaml` and mounts them into every Airflow
container as JSON. DAGs read them through this module instead of hard-coding any of it:

    from airflow_platform_pools import pod_settings
    KubernetesPodOperator(task_id="copy", image=..., **pod_settings("ssd", labels={"team": "data"}))

Outside the platform (a DAG author's CI), `airflow_platform_pools.testing` supplies example presets.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from kubernetes.client import models as k8s

PRESETS_ENV = "AIRFLOW_PLATFORM_PRESETS"
DEFAULT_PRESETS_PATH = "/opt/airflow/platform/presets.json"
# Taints whose pool only makes sense with the matching extended resource: a pod that tolerates the taint
# but asks for no device lands on the GPU node and gets no GPU (NVIDIA device plugin convention).
RESOURCE_REQUIRED_BY_TAINT = {"nvidia.com/gpu": "nvidia.com/gpu"}
# KubernetesPodOperator keyword arguments merged with the pool's values instead of replacing them.
MERGED_MAPPINGS = ("labels", "annotations")
MERGED_LISTS = ("env_vars", "volumes", "volume_mounts", "tolerations", "secrets", "image_pull_secrets")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
ON_FINISH_ACTIONS = ("delete_pod", "delete_succeeded_pod", "keep_pod")
# A Kubernetes quantity, as the chart's schema checks it: 500m, 2, 1.5, 512Mi, 2Gi, 1e3 (not 2GB or -1).
QUANTITY = re.compile(r"^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+|[KMGTPE]i|[numkMGTPE])?$")
SUFFIXES = {"n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15,
            "E": 1e18, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50,
            "Ei": 2**60}  # fmt: skip
# Kubernetes expands $(VAR) in env values and arguments ($$( is the escape): an env value could copy
# another variable, e.g. a Secret's, into a place the author did not mean.
ENV_REFERENCE = re.compile(r"(?<!\$)(\$\$)*\$\(")
# Label and annotation keys: an optional DNS-subdomain prefix and `/`, then a name of at most 63 characters.
QUALIFIED_NAME = re.compile(
    r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
# An environment variable name as the API server validates it (env[].name, envFrom[].prefix).
ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
# Keyword arguments that would take a pod off its pool or around the platform's checks.
REFUSED_OVERRIDES = {"container_resources": "use resources= (merged with the pool's defaults and checked)"}
NODE_AFFINITY = "the pool's node affinity places the pod (pod affinity and anti-affinity are added to it)"
DEFAULT_LOGGING_INTERVAL = 60


@dataclass(frozen=True)
class NumberRule:
    """What a numeric KubernetesPodOperator argument must be."""

    integer: bool  # an int (the operator's and the API's type); else any finite number above 0
    minimum: int = 1  # for integers
    optional: bool = True  # None keeps the operator's meaning (no deadline, no periodic log fetch)


# Numbers refused here that used to fail the task at run time: the API server refuses activeDeadlineSeconds
# below 1 and a negative grace period, a negative sleep raises, a timeout of 0 gives up at once and an
# interval of 0 polls in a busy loop.
NUMERIC_ARGUMENTS = {
    "logging_interval": NumberRule(integer=True),
    "startup_timeout_seconds": NumberRule(integer=True, optional=False),
    "startup_check_interval_seconds": NumberRule(integer=True, optional=False),
    "schedule_timeout_seconds": NumberRule(integer=True),
    "active_deadline_seconds": NumberRule(integer=True),
    "termination_grace_period": NumberRule(integer=True, minimum=0),
    "poll_interval": NumberRule(integer=False, optional=False),
    "base_container_status_polling_interval": NumberRule(integer=False, optional=False),
}

__all__ = [
    "PresetsError",
    "UnknownPoolError",
    "pod_settings",
    "pool_label_key",
    "pool_names",
    "presets",
]


class PresetsError(RuntimeError):
    """The presets file the chart publishes is missing or malformed."""


class UnknownPoolError(ValueError):
    """A DAG asked for a pool the platform does not define."""


def presets_path() -> Path:
    return Path(os.environ.get(PRESETS_ENV, DEFAULT_PRESETS_PATH))


@cache
def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise PresetsError(
            f"pool presets not found at {path}: the chart mounts them there; outside the platform set "
            f"{PRESETS_ENV} to a presets.json file (airflow_platform_pools.testing ships an example)"
        ) from None
    except json.JSONDecodeError as error:
        raise PresetsError(f"pool presets at {path} are not valid JSON: {error}") from None
    if not isinstance(data.get("pools"), dict) or not data["pools"]:
        raise PresetsError(f"pool presets at {path} define no pools (expected a 'pools' mapping)")
    if not data.get("poolLabelKey"):
        raise PresetsError(f"pool presets at {path} have no 'poolLabelKey' (the chart publishes it)")
    return data


def presets() -> dict[str, Any]:
    """The whole presets document (pools, pod defaults, images, per-DAG settings)."""
    return _load(presets_path())


def pool_names() -> list[str]:
    return sorted(presets()["pools"])


def pool_label_key() -> str:
    """The node/pod label naming a pool (`poolLabelKey` of node-pools/pools.yaml)."""
    return str(presets()["poolLabelKey"])


def _pool(name: str) -> dict[str, Any]:
    pools = presets()["pools"]
    if not isinstance(name, str) or name not in pools:
        raise UnknownPoolError(f"unknown pool {name!r}: the platform defines {', '.join(sorted(pools))}")
    return pools[name]


# {"requests": {"cpu": "100m"}, "limits": {"nvidia.com/gpu": "1", "memory": None}}; None removes a default.
Resources = dict[str, dict[str, str | None]]


def quantity(value: str) -> float:
    """A Kubernetes quantity as a number (bytes, cores, devices)."""
    match = QUANTITY.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a Kubernetes quantity (e.g. 500m, 2, 512Mi, 2Gi)")
    suffix = match.group(3) or ""
    if suffix[:1] in ("e", "E"):
        return float(value)
    return float(value[: len(value) - len(suffix)]) * SUFFIXES[suffix]


def _resources(
    pool_name: str, pool: dict[str, Any], overrides: Resources | None
) -> dict[str, dict[str, str]]:
    """The pool's default requests/limits with the DAG's overrides merged per key (None removes one);
    every value a quantity, no request above its limit, no extended resource above what the pool's
    nodes have (`extendedResources`)."""
    defaults = pool.get("resources", {})
    merged: dict[str, dict[str, Any]] = {
        kind: dict(defaults.get(kind) or {}) for kind in ("requests", "limits")
    }
    if overrides is not None and not isinstance(overrides, dict):
        raise ValueError(f"resources must be a mapping of 'requests'/'limits', got {overrides!r}")
    for kind, values in (overrides or {}).items():
        if kind not in merged:
            raise ValueError(f"resources override has unknown section {kind!r}: use 'requests' or 'limits'")
        if values is not None and not isinstance(values, dict):
            raise ValueError(
                f"resources[{kind!r}] must be a mapping of resource name to quantity, got {values!r}"
            )
        for name, value in (values or {}).items():
            if value is None:
                merged[kind].pop(name, None)
                continue
            text = str(value)
            try:
                quantity(text)
            except ValueError as error:
                raise ValueError(f"resources[{kind!r}][{name!r}]: {error}") from None
            merged[kind][name] = text
    for name, request in merged["requests"].items():
        limit = merged["limits"].get(name)
        if limit is not None and quantity(request) > quantity(limit):
            raise ValueError(
                f"resources: requests[{name!r}] ({request}) is above limits[{name!r}] ({limit}) of pool "
                f"{pool_name!r}: Kubernetes rejects such a pod"
            )
    for name, capacity in (pool.get("extendedResources") or {}).items():
        for kind in ("requests", "limits"):
            asked = merged[kind].get(name)
            if asked is not None and quantity(asked) > quantity(str(capacity)):
                raise ValueError(
                    f"resources[{kind!r}][{name!r}] ({asked}) is above what a node of pool {pool_name!r} "
                    f"has ({capacity}): the pod would never be scheduled"
                )
    return merged


def _check_required_devices(
    pool_name: str, pool: dict[str, Any], resources: dict[str, dict[str, str]]
) -> None:
    for toleration in pool.get("tolerations", []):
        resource = RESOURCE_REQUIRED_BY_TAINT.get(toleration.get("key", ""))
        if resource is None:
            continue
        limit = resources["limits"].get(resource, "0")
        if not limit.isdigit() or int(limit) < 1:
            raise ValueError(
                f"pool {pool_name!r} is for pods that use {resource}: a pod without it would hold the node "
                f"and get no device; pass resources={{'limits': {{'{resource}': '1'}}}} (got {limit!r})"
            )


def _as_dict(value: Any) -> dict[str, Any]:
    """A Kubernetes model object or a dict, as the API's camelCase dict."""
    if isinstance(value, dict):
        return value
    from kubernetes.client import ApiClient

    return ApiClient().sanitize_for_serialization(value) or {}


def _env_values(env_vars: Any) -> list[tuple[str, str]]:
    if isinstance(env_vars, dict):
        return [(str(name), str(value)) for name, value in env_vars.items()]
    pairs = []
    for variable in env_vars or []:
        item = _as_dict(variable)
        if item.get("value") is not None:
            pairs.append((str(item.get("name")), str(item["value"])))
    return pairs


def _check_shapes(overrides: dict[str, Any]) -> None:
    """Lists are lists and mappings map names to strings Kubernetes accepts, refused here naming the
    argument: a string where a list belongs was merged character by character (image_pull_secrets="cred"
    became the Secrets c, r, e, d), other shapes failed with a TypeError inside the helper, and bad labels
    only when the pod was created."""
    for key in MERGED_LISTS:
        value = overrides.get(key)
        allowed: tuple[type, ...] = (list, tuple, dict) if key == "env_vars" else (list, tuple)
        if value is not None and not isinstance(value, allowed):
            raise ValueError(f"{key} must be a list, got {value!r}")
    for key in (*MERGED_MAPPINGS, "node_selector"):
        value = overrides.get(key)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise ValueError(f"{key} must be a mapping of names to strings, got {value!r}")
        for name, text in value.items():
            if not isinstance(name, str) or not QUALIFIED_NAME.fullmatch(name):
                raise ValueError(
                    f"{key}: {name!r} is not a Kubernetes key (an optional DNS-name prefix and /, then at "
                    "most 63 letters, digits, -, _ or ., starting and ending with a letter or digit)"
                )
            if not isinstance(text, str):
                raise ValueError(f"{key}[{name!r}]: {text!r} is not a string (quote it)")
            if key != "annotations" and not LABEL_VALUE.fullmatch(text):
                raise ValueError(
                    f"{key}[{name!r}]: {text!r} is not a label value (at most 63 letters, digits, -, _ or ., "
                    "starting and ending with a letter or digit)"
                )
    env_vars = overrides.get("env_vars")
    if isinstance(env_vars, dict):
        for name, text in env_vars.items():
            if not isinstance(name, str) or not isinstance(text, str):
                raise ValueError(f"env_vars {name!r}: names and values are strings, got {text!r}")


def _check_number(name: str, value: Any) -> None:
    rule = NUMERIC_ARGUMENTS[name]
    if value is None and rule.optional:
        return
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if rule.integer:
        valid = number and isinstance(value, int) and value >= rule.minimum
        wanted = f"an integer >= {rule.minimum}"
    else:
        valid = number and math.isfinite(value) and value > 0
        wanted = "a number above 0"
    if not valid:
        raise ValueError(f"{name} must be {wanted}{' or None' if rule.optional else ''}, got {value!r}")


def _env_names(overrides: dict[str, Any]) -> list[tuple[str, Any]]:
    """(argument, name) of every environment variable name the pod would get from the overrides."""
    env_vars = overrides.get("env_vars") or []
    if isinstance(env_vars, dict):
        names: list[tuple[str, Any]] = [("env_vars", name) for name in env_vars]
    else:
        names = [(f"env_vars[{i}]", _as_dict(variable).get("name")) for i, variable in enumerate(env_vars)]
    for index, secret in enumerate(overrides.get("secrets") or []):
        target = getattr(secret, "deploy_target", None)
        if getattr(secret, "deploy_type", None) == "env" and target is not None:  # None: every key
            names.append((f"secrets[{index}] deploy_target", target))
    for index, source in enumerate(overrides.get("env_from") or []):
        prefix = _as_dict(source).get("prefix")
        if prefix:  # validated as a name of its own
            names.append((f"env_from[{index}] prefix", prefix))
    return names


def _check_env_names(overrides: dict[str, Any]) -> None:
    for argument, name in _env_names(overrides):
        if not isinstance(name, str) or not ENV_NAME.fullmatch(name):
            raise ValueError(
                f"{argument}: {name!r} is not an environment variable name Kubernetes accepts (letters, "
                "digits, -, _ and ., not starting with a digit)"
            )


def _check_overrides(pool_name: str, settings: dict[str, Any], overrides: dict[str, Any]) -> None:
    """Refuse what would take the pod off its pool, around the platform's checks, or expand $(VAR)."""
    _check_shapes(overrides)
    _check_env_names(overrides)
    for name in NUMERIC_ARGUMENTS.keys() & overrides.keys():
        _check_number(name, overrides[name])
    for key, advice in REFUSED_OVERRIDES.items():
        if overrides.get(key) is not None:
            raise ValueError(f"{key} cannot be passed to pod_settings: {advice}")
    affinity = _as_dict(overrides.get("affinity") or {})
    if affinity.get("nodeAffinity") or affinity.get("node_affinity"):
        raise ValueError(f"affinity of pool {pool_name!r}: {NODE_AFFINITY}")
    account = overrides.get("service_account_name")
    if account is not None and account != settings["serviceAccountName"]:
        raise ValueError(
            f"service_account_name {account!r}: job pods run as {settings['serviceAccountName']!r} (the "
            "workload namespaces' admission policy refuses any other)"
        )
    namespace = overrides.get("namespace")
    if namespace is not None and namespace != settings["namespace"]:
        # The worker's RBAC and the quota that backs this pool's Airflow pool are per namespace: a pod
        # elsewhere is refused at run time, or runs uncounted in another pool's quota.
        raise ValueError(
            f"namespace {namespace!r}: pods of pool {pool_name!r} run in {settings['namespace']!r}; "
            "choose the pool whose namespace you want instead"
        )
    pools = presets()["pools"]
    own = {(t.get("key"), t.get("value")) for t in settings.get("tolerations", [])}
    foreign = {
        (t.get("key"), t.get("value"))
        for name, other in pools.items() if name != pool_name
        for t in other.get("tolerations", [])
    } - own  # fmt: skip
    for index, toleration in enumerate(overrides.get("tolerations") or []):
        item = _as_dict(toleration)
        key, value, operator = item.get("key"), item.get("value"), item.get("operator") or "Equal"
        if not key:
            raise ValueError(
                f"tolerations[{index}]: a toleration without a key tolerates every taint (pool {pool_name!r})"
            )
        if any(k == key and (operator == "Exists" or v == value) for k, v in foreign):
            raise ValueError(
                f"tolerations[{index}]: {key}={value if operator != 'Exists' else '*'} is another pool's "
                f"taint: choose that pool instead of {pool_name!r}"
            )
    labels = dict(settings.get("nodeLabels") or {}, **{pool_label_key(): pool_name})
    pool_keys = {k for other in pools.values() for k in (other.get("nodeLabels") or {})} | {pool_label_key()}
    for key, value in (overrides.get("node_selector") or {}).items():
        if key in pool_keys and labels.get(key) != value:
            raise ValueError(
                f"node_selector {key}={value}: nodes of pool {pool_name!r} have "
                f"{key}={labels.get(key, '(unset)')}; choose the pool by name instead"
            )
    for name, value in _env_values(overrides.get("env_vars")):
        if ENV_REFERENCE.search(value):
            raise ValueError(
                f"env_vars {name}: {value!r} contains $( which Kubernetes expands to another variable's "
                "value; write $$( for a literal $("
            )


def _merge(settings: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Caller keyword arguments on top of the pool's: mappings and lists merge, the rest replaces."""
    merged = dict(settings)
    for key, value in overrides.items():
        if key in MERGED_MAPPINGS:
            # The pool's own entries (the pool label) win: they are what the platform relies on.
            merged[key] = {**(value or {}), **(settings.get(key) or {})}
        elif key in MERGED_LISTS:
            if key == "env_vars" and isinstance(value, dict):
                # {name: value}: spread as a list it gave the pod its names only, as strings.
                value = [k8s.V1EnvVar(name=name, value=text) for name, text in value.items()]
            merged[key] = [*(settings.get(key) or []), *(value or [])]
        elif key == "affinity":
            # The author's pod (anti-)affinity next to the pool's node affinity (checked: no nodeAffinity).
            merged[key] = {**_as_dict(value or {}), **(settings.get(key) or {})}
        elif key == "callbacks":
            from .metrics import merge_callbacks

            # The DAG author's callbacks run too, after the platform's (one class or a list).
            merged[key] = merge_callbacks(settings.get(key), value)
        else:
            merged[key] = value
    namespace = merged["namespace"]
    if not isinstance(namespace, str) or not DNS_LABEL.match(namespace):
        raise ValueError(f"namespace {namespace!r} is not a Kubernetes namespace name (RFC 1123 label)")
    if merged["on_finish_action"] not in ON_FINISH_ACTIONS:
        raise ValueError(
            f"on_finish_action {merged['on_finish_action']!r}: use one of {', '.join(ON_FINISH_ACTIONS)}"
        )
    return merged


def pod_settings(
    pool: str,
    *,
    resources: Resources | None = None,
    deferrable: bool = False,
    logging_interval: int = DEFAULT_LOGGING_INTERVAL,
    **overrides: Any,
) -> dict[str, Any]:
    """KubernetesPodOperator keyword arguments that place a task's pod on `pool`.

    `resources` merges into the pool's default requests/limits (a None value removes a default), e.g.
    `{"limits": {"nvidia.com/gpu": "1", "cpu": None}}`. Every other KubernetesPodOperator argument can
    be passed too: labels, annotations merge with the pool's; env_vars, volumes, volume_mounts,
    tolerations, secrets and image_pull_secrets are appended; anything else (on_finish_action, ...)
    replaces the pool's value, except what would leave the pool (namespace, service account, another
    pool's tolerations or node labels, node affinity), which is refused; `callbacks` are added to the
    platform's (the job pod start latency metric, `airflow_platform_pools.metrics`). `deferrable=True`
    hands the wait for a long pod to the triggerer (no worker pod held), streaming its log every
    `logging_interval` seconds (None: once, at the end).

    Refused with a ValueError naming the argument, when the DAG is parsed: environment variable names
    Kubernetes rejects (env_vars, secrets' deploy_target, env_from prefixes) and numbers the operator or the
    API server cannot use (NUMERIC_ARGUMENTS: a timeout, interval or deadline of 0 or below, a negative
    termination_grace_period, a float where Kubernetes wants an integer).
    """
    # Imported here: it loads Airflow's provider and metrics modules, which only a DAG file needs.
    from .metrics import JobPodStartLatency

    settings = _pool(pool)
    _check_number("logging_interval", logging_interval)
    defaults = presets().get("podDefaults", {})
    merged_resources = _resources(pool, settings, resources)
    _check_overrides(pool, settings, overrides)
    _check_required_devices(pool, settings, merged_resources)
    base: dict[str, Any] = {
        "namespace": settings["namespace"],
        "service_account_name": settings["serviceAccountName"],
        "tolerations": [k8s.V1Toleration(**toleration) for toleration in settings.get("tolerations", [])],
        "affinity": settings.get("affinity"),
        "container_resources": k8s.V1ResourceRequirements(
            requests=merged_resources["requests"] or None, limits=merged_resources["limits"] or None
        ),
        "labels": {pool_label_key(): pool},
        "on_finish_action": defaults.get("onFinishAction", "delete_pod"),
        "startup_timeout_seconds": int(defaults.get("startupTimeoutSeconds", 600)),
        "image_pull_policy": defaults.get("imagePullPolicy", "IfNotPresent"),
        "automount_service_account_token": False,
        # FailedScheduling on a tainted pool or an image pull error then shows in the task log.
        "log_events_on_failure": True,
        # The workload namespaces enforce Pod Security "restricted": pods without these are refused.
        "security_context": defaults.get("securityContext"),
        "container_security_context": defaults.get("containerSecurityContext"),
        # Job pod start latency per pool on the dashboard: Airflow's own metrics know only DAGs and tasks.
        "callbacks": [JobPodStartLatency],
    }
    if defaults.get("imagePullSecrets"):
        # The platform's pull credential (chart: images.pullSecrets/pullCredentials), in every namespace.
        base["image_pull_secrets"] = [
            k8s.V1LocalObjectReference(name=name) for name in defaults["imagePullSecrets"]
        ]
    if "startupCheckIntervalSeconds" in defaults:
        # The operator checks a starting pod every 5 s by default: up to 5 s of nothing on every task.
        base["startup_check_interval_seconds"] = int(defaults["startupCheckIntervalSeconds"])
    if "scheduleTimeoutSeconds" in defaults:
        # As long as the chart lets a worker pod wait in the queue (task_queued_timeout).
        base["schedule_timeout_seconds"] = int(defaults["scheduleTimeoutSeconds"])
    if settings.get("airflowPool"):
        # The Airflow pool mirrors the namespace quota: a full quota queues tasks instead of failing pods.
        base["pool"] = settings["airflowPool"]
    if deferrable:
        base |= {"deferrable": True, "logging_interval": logging_interval}
    return _merge(base, overrides)
