"""node_pool_examples: the pattern for teams, one pod per node pool.

A team ships its job as an image; the DAG only says which pool the job needs. `pod_settings(pool)`
supplies namespace, tolerations, node affinity, default resources and service account from the presets
the platform publishes, so none of that is repeated in DAG code.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import DAG
from airflow_platform_pools import pod_settings, presets
from kubernetes.client import models as k8s

# Any image works; this one is already on every platform cluster.
JOB_IMAGE = presets()["images"]["clickhouseTools"]
# The node the pod landed on, from the downward API (the job itself needs no Kubernetes access).
NODE_NAME = k8s.V1EnvVar(
    name="NODE_NAME",
    value_from=k8s.V1EnvVarSource(field_ref=k8s.V1ObjectFieldSelector(field_path="spec.nodeName")),
)
# What each pool's job asks for beyond the pool's defaults. The gpu node advertises nvidia.com/gpu
# (simulated on kind), so a GPU limit is what gets the pod scheduled there.
EXTRA_RESOURCES: dict[str, dict[str, dict[str, str]]] = {
    "general": {},
    "gpu": {"limits": {"nvidia.com/gpu": "1"}},
    "ssd": {},
}

with DAG(
    dag_id="node_pool_examples",
    description="One pod per node pool: how to place a job on general, gpu or ssd nodes",
    schedule=None,
    catchup=False,
    is_paused_upon_creation=True,
    tags=["example", "platform"],
    default_args={"retries": 1, "retry_delay": timedelta(minutes=1)},
) as dag:
    for pool, extra in EXTRA_RESOURCES.items():
        KubernetesPodOperator(
            task_id=f"on_{pool}_pool",
            name=f"on-{pool}-pool",
            image=JOB_IMAGE,
            cmds=["bash", "-c"],
            arguments=['echo "running on node $NODE_NAME with $(nproc) CPUs"'],
            env_vars=[NODE_NAME],
            **pod_settings(pool, resources=extra),
        )
