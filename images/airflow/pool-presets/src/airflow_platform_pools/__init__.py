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
import os
import re
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
DEFAULT_LOGGING_INTERVAL = 60

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
    if name not in pools:
        raise UnknownPoolError(f"unknown pool {name!r}: the platform defines {', '.join(sorted(pools))}")
    return pools[name]


# {"requests": {"cpu": "100m"}, "limits": {"nvidia.com/gpu": "1", "memory": None}}; None removes a default.
Resources = dict[str, dict[str, str | None]]


def _resources(pool: dict[str, Any], overrides: Resources | None) -> dict[str, dict[str, str]]:
    """The pool's default requests/limits with the DAG's overrides merged per key (None removes one)."""
    defaults = pool.get("resources", {})
    merged: dict[str, dict[str, Any]] = {
        kind: dict(defaults.get(kind) or {}) for kind in ("requests", "limits")
    }
    for kind, values in (overrides or {}).items():
        if kind not in merged:
            raise ValueError(f"resources override has unknown section {kind!r}: use 'requests' or 'limits'")
        for name, value in (values or {}).items():
            if value is None:
                merged[kind].pop(name, None)
            else:
                merged[kind][name] = str(value)
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


def _merge(settings: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Caller keyword arguments on top of the pool's: mappings and lists merge, the rest replaces."""
    merged = dict(settings)
    for key, value in overrides.items():
        if key in MERGED_MAPPINGS:
            # The pool's own entries (the pool label) win: they are what the platform relies on.
            merged[key] = {**(value or {}), **(settings.get(key) or {})}
        elif key in MERGED_LISTS:
            merged[key] = [*(settings.get(key) or []), *(value or [])]
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
    tolerations, secrets and image_pull_secrets are appended; anything else (namespace,
    on_finish_action, ...) replaces the pool's value; `callbacks` are added to the platform's (the job pod
    start latency metric, `airflow_platform_pools.metrics`). `deferrable=True` hands the wait for a long pod
    to the triggerer (no worker pod held), streaming its log every `logging_interval` seconds.
    """
    # Imported here: it loads Airflow's provider and metrics modules, which only a DAG file needs.
    from .metrics import JobPodStartLatency

    settings = _pool(pool)
    defaults = presets().get("podDefaults", {})
    merged_resources = _resources(settings, resources)
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
    if "scheduleTimeoutSeconds" in defaults:
        # As long as the chart lets a worker pod wait in the queue (task_queued_timeout).
        base["schedule_timeout_seconds"] = int(defaults["scheduleTimeoutSeconds"])
    if settings.get("airflowPool"):
        # The Airflow pool mirrors the namespace quota: a full quota queues tasks instead of failing pods.
        base["pool"] = settings["airflowPool"]
    if deferrable:
        base |= {"deferrable": True, "logging_interval": int(logging_interval)}
    return _merge(base, overrides)
