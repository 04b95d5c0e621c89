"""Every pod: placed on its pool, restricted security context, resources, probes where long-running."""

from __future__ import annotations

from typing import Any

from tests.facts import IMAGE_REPOSITORIES

from .rendering import Manifest, pod_specs, pool_placement, presets

LONG_RUNNING = ("Deployment/", "StatefulSet/")
PLATFORM_IMAGES = tuple(IMAGE_REPOSITORIES.values())  # images/<name>/, as the chart's values name them
AIRFLOW_DEPLOYMENTS = tuple(
    f"Deployment/airflow-platform-{component}"
    for component in ("api-server", "scheduler", "dag-processor", "triggerer")
)


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def test_every_pod_runs_on_the_general_pool(scenario_manifests: list[Manifest]) -> None:
    """Placement equals the `general` pool the chart publishes to DAGs (the file's, or redefined)."""
    general = presets(scenario_manifests)["pools"]["general"]
    for name, spec in pod_specs(scenario_manifests):
        assert spec.get("tolerations", []) == general["tolerations"], name
        assert spec["affinity"]["nodeAffinity"] == general["affinity"]["nodeAffinity"], name


def test_kind_pods_run_on_the_files_general_pool(kind_manifests: list[Manifest]) -> None:
    tolerations, affinity = pool_placement("general")
    for name, spec in pod_specs(kind_manifests):
        assert spec["tolerations"] == tolerations, name
        assert spec["affinity"] == affinity, name


def test_every_pod_is_restricted(scenario_manifests: list[Manifest]) -> None:
    for name, spec in pod_specs(scenario_manifests):
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["securityContext"].get("runAsUser", 1) != 0, name
        assert "hostNetwork" not in spec and "hostPID" not in spec, name
        for volume in spec.get("volumes", []):
            assert "hostPath" not in volume, f"{name}: hostPath volume {volume['name']}"
        for container in containers(spec):
            context = container["securityContext"]
            label = f"{name}/{container['name']}"
            assert context["allowPrivilegeEscalation"] is False, label
            assert context["capabilities"] == {"drop": ["ALL"]}, label
            assert context["runAsNonRoot"] is True, label
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, label
            assert context.get("privileged") is not True, label


def test_read_only_root_filesystem_with_writable_tmp(scenario_manifests: list[Manifest]) -> None:
    for name, spec in pod_specs(scenario_manifests):
        for container in containers(spec):
            assert container["securityContext"]["readOnlyRootFilesystem"] is True, (
                f"{name}/{container['name']}"
            )
        tmp = [v for v in spec.get("volumes", []) if v["name"] == "tmp"]
        if tmp:
            assert "emptyDir" in tmp[0], name


def test_every_container_has_requests_and_limits(scenario_manifests: list[Manifest]) -> None:
    for name, spec in pod_specs(scenario_manifests):
        for container in containers(spec):
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), f"{name}/{container['name']}"
            assert {"cpu", "memory"} <= set(resources["limits"]), f"{name}/{container['name']}"


def test_long_running_containers_have_probes(scenario_manifests: list[Manifest]) -> None:
    for name, spec in pod_specs(scenario_manifests):
        if not name.startswith(LONG_RUNNING):
            continue
        for container in spec["containers"]:
            assert "livenessProbe" in container, f"{name}/{container['name']}"
            assert "readinessProbe" in container or "startupProbe" in container, f"{name}/{container['name']}"


def test_component_probes(scenario_manifests: list[Manifest]) -> None:
    probes = {
        name: spec["containers"][0]["livenessProbe"]
        for name, spec in pod_specs(scenario_manifests)
        if name.startswith("Deployment/airflow-platform-")
    }
    api_probe = probes["Deployment/airflow-platform-api-server"]["exec"]["command"]
    assert "http://127.0.0.1:8080/api/v2/monitor/health" in api_probe[-1]
    for component, job_type in (
        ("scheduler", "SchedulerJob"), ("dag-processor", "DagProcessorJob"), ("triggerer", "TriggererJob"),
    ):  # fmt: skip
        command = probes[f"Deployment/airflow-platform-{component}"]["exec"]["command"]
        assert command[:3] == ["airflow", "jobs", "check"] and job_type in command


def test_images_come_from_the_platform(scenario_manifests: list[Manifest]) -> None:
    for name, spec in pod_specs(scenario_manifests):
        for container in containers(spec):
            repository = container["image"].rsplit(":", 1)[0]
            assert repository.endswith(PLATFORM_IMAGES), f"{name}: {container['image']}"
            assert not container["image"].endswith(":latest")


def test_components_wait_for_migrations(scenario_manifests: list[Manifest]) -> None:
    for name, spec in pod_specs(scenario_manifests):
        if name in AIRFLOW_DEPLOYMENTS:
            init = spec["initContainers"][0]
            assert init["command"][:3] == ["airflow", "db", "check-migrations"], name
