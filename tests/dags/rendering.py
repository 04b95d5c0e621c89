"""Pods of the sync DAG as a run would create them: templates rendered with the run's params."""

from __future__ import annotations

import copy
import sys
from typing import Any

from kubernetes.client import models as k8s


def dag_module(task: Any) -> Any:
    """The module the DagBag loaded the task's DAG file as (its functions and constants)."""
    return sys.modules[type(task).__module__]


def resolve(dag: Any, name: str, value: Any) -> Any:
    """Check one param value as a trigger does (on a copy: Param.resolve keeps the value it checked)."""
    return copy.deepcopy(dag.params.get_param(name)).resolve(value)


def run_params(dag: Any, **overrides: Any) -> dict[str, Any]:
    """The params of a run triggered with `overrides` as conf, each checked as the trigger checks it."""
    for name, value in overrides.items():
        resolve(dag, name, value)
    return {**dag.params.dump(), **overrides}


def rendered_task(dag: Any, task_id: str, **param_overrides: Any) -> Any:
    """A copy of the task with its template fields rendered for a run with these params."""
    task = copy.deepcopy(dag.get_task(task_id))
    params = run_params(dag, **param_overrides)
    task.render_template_fields({"params": params, "task": task}, jinja_env=dag.get_template_env())
    if hasattr(task, "password_env"):
        task.secrets = dag_module(task).password_secrets(task.password_env, params)
    return task


def rendered_pod(dag: Any, task_id: str, **param_overrides: Any) -> k8s.V1Pod:
    return rendered_task(dag, task_id, **param_overrides).build_pod_request_obj(dry_run=True)
