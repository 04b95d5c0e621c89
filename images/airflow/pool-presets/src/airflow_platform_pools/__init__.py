"""Pod settings for the platform's node pools, for DAG authors.

The Helm chart renders the presets (namespace, tolerations, node affinity, default resources, service
account, pod defaults) from `node-pools/pools.yaml` and mounts them into every Airflow container as JSON.
DAGs read them through this module instead of hard-coding any of it:

    from airflow_platform_pools import pod_settings
    KubernetesPodOperator(task_id="copy", image=..., **pod_settings("ssd"))
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

from kubernetes.client import models as k8s

PRESETS_ENV = "AIRFLOW_PLATFORM_PRESETS"
DEFAULT_PRESETS_PATH = "/opt/airflow/platform/presets.json"
# Pod label that records which pool a task pod asked for (for `kubectl get pods -l`, dashboards, tests).
POD_POOL_LABEL = "airflow-platform.io/pool"

__all__ = ["POD_POOL_LABEL", "PresetsError", "UnknownPoolError", "pod_settings", "pool_names", "presets"]


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
            f"pool presets not found at {path}: the chart mounts them there; "
            f"outside the platform set {PRESETS_ENV} to a presets.json file"
        ) from None
    except json.JSONDecodeError as error:
        raise PresetsError(f"pool presets at {path} are not valid JSON: {error}") from None
    if not isinstance(data.get("pools"), dict) or not data["pools"]:
        raise PresetsError(f"pool presets at {path} define no pools (expected a 'pools' mapping)")
    return data


def presets() -> dict[str, Any]:
    """The whole presets document (pools, pod defaults, images, per-DAG settings)."""
    return _load(presets_path())


def pool_names() -> list[str]:
    return sorted(presets()["pools"])


def _pool(name: str) -> dict[str, Any]:
    pools = presets()["pools"]
    if name not in pools:
        raise UnknownPoolError(f"unknown pool {name!r}: the platform defines {', '.join(sorted(pools))}")
    return pools[name]


# {"requests": {"cpu": "100m"}, "limits": {"nvidia.com/gpu": "1"}}
Resources = dict[str, dict[str, str]]


def _resources(pool: dict[str, Any], overrides: Resources | None) -> k8s.V1ResourceRequirements:
    """The pool's default requests/limits, with the DAG's overrides merged per key (e.g. a GPU limit)."""
    defaults = pool.get("resources", {})
    merged: Resources = {kind: dict(defaults.get(kind, {})) for kind in ("requests", "limits")}
    for kind, values in (overrides or {}).items():
        if kind not in merged:
            raise ValueError(f"resources override has unknown section {kind!r}: use 'requests' or 'limits'")
        merged[kind].update(values)
    return k8s.V1ResourceRequirements(requests=merged["requests"] or None, limits=merged["limits"] or None)


def pod_settings(pool: str, *, resources: Resources | None = None) -> dict[str, Any]:
    """KubernetesPodOperator keyword arguments that place a task's pod on `pool`.

    `resources` merges into the pool's default requests/limits, e.g.
    `{"limits": {"nvidia.com/gpu": "1"}}` for a GPU task.
    """
    settings = _pool(pool)
    defaults = presets().get("podDefaults", {})
    return {
        "namespace": settings["namespace"],
        "service_account_name": settings["serviceAccountName"],
        "tolerations": [k8s.V1Toleration(**toleration) for toleration in settings.get("tolerations", [])],
        "affinity": settings.get("affinity"),
        "container_resources": _resources(settings, resources),
        "labels": {POD_POOL_LABEL: pool},
        "on_finish_action": defaults.get("onFinishAction", "delete_pod"),
        "startup_timeout_seconds": int(defaults.get("startupTimeoutSeconds", 600)),
        "image_pull_policy": defaults.get("imagePullPolicy", "IfNotPresent"),
        "automount_service_account_token": False,
        # The workload namespaces enforce Pod Security "restricted": pods without these are refused.
        "security_context": defaults.get("securityContext"),
        "container_security_context": defaults.get("containerSecurityContext"),
    }
