"""A worker killed mid-task leaves no pod behind (issue #15).

The executor worker pod of a KubernetesPodOperator task is force-deleted while its job pod runs. The task
must leave `running`, the orphan reaper (housekeeping.orphanedPods) must delete the job pod within a bound
derived from its installed schedule and grace period, and no pod of the run may stay in any platform
namespace. The DAG arrives through the e2e git bundle, as a DAG author's would.
"""

from __future__ import annotations

import configparser
import re
import time

import pytest
from kubernetes import client as k8s

from tests.facts import (
    JOBS_NAMESPACE,
    NAMESPACE,
    PLATFORM_NAMESPACES,
    RELEASE,
    TASK_POD_NAMESPACES,
    WORKER_NAMESPACE,
)

from .bundle_repo import REFRESH_BUDGET, Api, Repository, wait_until

pytestmark = pytest.mark.cluster

TASK_ID = "sleep"
REAPER = f"{RELEASE}-orphan-reaper"
START_BUDGET_S = 600  # worker pod, checkout of the run's commit, job pod started (kind under load)
REAPER_RUN_BUDGET_S = 180  # one reaper Job: created by the CronJob controller, pod started, Airflow imported

# retries=0: the killed try is the last one, so the task ends `failed` and its pod stays an orphan.
# on_kill_action and on_finish_action keep_pod: a force-deleted pod's container still gets SIGTERM and the
# operator would delete its own job pod; keeping it stands for a worker that dies without cleaning up
# (SIGKILL, OOM, node lost), which only the reaper can follow. The trap lets the pod end at once when
# deleted, and the sleep outlasts the reaper's bound.
KILLED_WORKER_DAG = """
from __future__ import annotations

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import DAG
from airflow_platform_pools import pod_settings, presets

with DAG("{dag_id}", schedule=None, catchup=False, tags=["e2e"]) as dag:
    KubernetesPodOperator(
        task_id="{task_id}",
        image=presets()["images"]["clickhouseTools"],
        cmds=["bash", "-c"],
        arguments=["trap 'exit 0' TERM; sleep 3600 & wait"],
        retries=0,
        **pod_settings("general", on_kill_action="keep_pod", on_finish_action="keep_pod"),
    )
"""


def _reaper_settings(batch: k8s.BatchV1Api) -> tuple[int, int]:
    """(grace, period) in seconds of the installed reaper: its --grace-minutes and the longest gap between
    two runs of its `*/N * * * *` schedule (N minutes, also across the hour)."""
    cron = batch.read_namespaced_cron_job(REAPER, NAMESPACE)
    assert not cron.spec.suspend, f"{REAPER} is suspended"
    minute, *rest = cron.spec.schedule.split()
    assert re.fullmatch(r"\*(/\d+)?", minute) and rest == ["*"] * 4, f"no bound for {cron.spec.schedule!r}"
    command = cron.spec.job_template.spec.template.spec.containers[0].command
    return 60 * int(command[command.index("--grace-minutes") + 1]), 60 * int(minute[2:] or 1)


def _heartbeat_timeout_s(core: k8s.CoreV1Api) -> int:
    """After this long without heartbeats the scheduler fails a running task (the fallback if it misses
    the worker's deletion); from the installed airflow.cfg, else Airflow's default."""
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read_string(core.read_namespaced_config_map(f"{RELEASE}-config", NAMESPACE).data["airflow.cfg"])
    return cfg.getint("scheduler", "task_instance_heartbeat_timeout", fallback=300)


def _running_pod(core: k8s.CoreV1Api, namespace: str, selector: str) -> k8s.V1Pod | None:
    pods = core.list_namespaced_pod(namespace, label_selector=selector).items
    return next((pod for pod in pods if pod.status.phase == "Running"), None)


def _gone(core: k8s.CoreV1Api, namespace: str, name: str) -> bool:
    try:
        core.read_namespaced_pod(name, namespace)
    except k8s.ApiException as error:
        if error.status == 404:
            return True
        raise
    return False


def _reaper_log(core: k8s.CoreV1Api) -> str:
    """The newest reaper pod's log, for the failure message (is it running, what did it decide)."""
    pods = core.list_namespaced_pod(
        NAMESPACE, label_selector="app.kubernetes.io/component=orphan-reaper"
    ).items
    if not pods:
        return "(no orphan-reaper pod)"
    newest = max(pods, key=lambda pod: pod.metadata.creation_timestamp)
    try:
        return core.read_namespaced_pod_log(newest.metadata.name, NAMESPACE, tail_lines=30)
    except k8s.ApiException as error:
        return f"({newest.metadata.name}: {error.reason})"


def test_job_pod_of_a_killed_worker_is_reaped(
    api: Api,
    repository: Repository,
    core: k8s.CoreV1Api,
    kube: k8s.ApiClient,
) -> None:
    dag_id = f"e2e_worker_killed_{int(time.time())}"
    selector = f"dag_id={dag_id}"
    repository.push(
        {f"{dag_id}.py": KILLED_WORKER_DAG.format(dag_id=dag_id, task_id=TASK_ID)}, f"add {dag_id}"
    )
    wait_until(lambda: api.exists(dag_id), f"{dag_id} parsed from git", REFRESH_BUDGET)
    run_id = api.trigger(dag_id)
    try:
        job_selector = f"{selector},kubernetes_pod_operator=True"
        wait_until(
            lambda: _running_pod(core, JOBS_NAMESPACE, job_selector), "the job pod running", START_BUDGET_S
        )
        job = _running_pod(core, JOBS_NAMESPACE, job_selector)
        assert job is not None
        workers = core.list_namespaced_pod(WORKER_NAMESPACE, label_selector=selector).items
        assert len(workers) == 1, [pod.metadata.name for pod in workers]
        core.delete_namespaced_pod(workers[0].metadata.name, WORKER_NAMESPACE, grace_period_seconds=0)

        # The executor's pod watcher reports the deleted worker and the scheduler fails the task at once;
        # if that event is missed, the heartbeat timeout does it.
        wait_until(
            lambda: api.task_state(dag_id, run_id, TASK_ID) != "running",
            "the task to leave running",
            _heartbeat_timeout_s(core) + 120,
        )
        left_running = time.time()
        assert api.task_state(dag_id, run_id, TASK_ID) == "failed"  # retries=0: no re-run

        # The pod is an orphan once older than the grace period and its task inactive; the next reaper run
        # comes within one period, one more if the previous run was still going (concurrencyPolicy
        # Forbid skips a run); then that run itself and the pod's termination.
        grace, period = _reaper_settings(k8s.BatchV1Api(kube))
        orphaned = max(job.metadata.creation_timestamp.timestamp() + grace, left_running)
        deadline = (
            orphaned + 2 * period + REAPER_RUN_BUDGET_S + (job.spec.termination_grace_period_seconds or 30)
        )
        try:
            wait_until(
                lambda: _gone(core, JOBS_NAMESPACE, job.metadata.name),
                f"{JOBS_NAMESPACE}/{job.metadata.name} deleted (grace {grace} s, reaper every {period} s)",
                max(deadline - time.time(), 5),
            )
        except TimeoutError as error:
            pytest.fail(f"{error}\nnewest orphan-reaper log:\n{_reaper_log(core)}")

        assert api.finished(dag_id, run_id, timeout=300)["state"] == "failed"
        left = [
            f"{namespace}/{pod.metadata.name} ({pod.status.phase})"
            for namespace in PLATFORM_NAMESPACES
            for pod in core.list_namespaced_pod(namespace, label_selector=selector).items
        ]
        assert left == [], "pods of the run left behind"
    finally:
        # A failed test must not leave an hour-long job pod (nor a worker) for the next tests.
        for namespace in TASK_POD_NAMESPACES:
            core.delete_collection_namespaced_pod(namespace, label_selector=selector, grace_period_seconds=0)
