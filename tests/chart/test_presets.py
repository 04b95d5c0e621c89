"""Pool presets published to DAGs equal node-pools/pools.yaml (the single source of truth)."""

from __future__ import annotations

import json

import pytest

from tests.facts import IMAGE_REPOSITORIES, NAMESPACE_OF_POOL, RELEASE, WORKER_NAMESPACE

from .rendering import CHART, NAMESPACE, POOLS, Manifest, pool_placement, presets, render, render_error

WORKERS = WORKER_NAMESPACE
EXPECTED_NAMESPACE = NAMESPACE_OF_POOL


def test_chart_reads_the_single_pool_definition() -> None:
    link = CHART / "files" / "node-pools.yaml"
    assert link.is_symlink()
    assert link.resolve() == (CHART.parents[1] / "node-pools" / "pools.yaml").resolve()


@pytest.mark.parametrize("values_file", ["values.yaml", "values-kind.yaml"])
def test_presets_equal_node_pools_file(values_file: str) -> None:
    """Without nodePools.definitions the presets are the file's pools (values-production redefines them)."""
    pools = presets(render(values_file))["pools"]
    assert set(pools) == set(POOLS["pools"])
    for name, definition in POOLS["pools"].items():
        tolerations, affinity = pool_placement(name)
        assert pools[name] == {
            "namespace": EXPECTED_NAMESPACE[name],
            "serviceAccountName": "airflow-workload",
            "nodeLabels": definition["labels"],
            "tolerations": tolerations,
            "affinity": affinity,
            "resources": definition["defaultResources"],
            # The Airflow pool mirroring the namespace quota (presets.airflowPools).
            "airflowPool": EXPECTED_NAMESPACE[name],
        }, name


def test_presets_published_in_control_plane_and_worker_namespaces(manifests: list[Manifest]) -> None:
    assert presets(manifests, NAMESPACE) == presets(manifests, WORKERS)


def test_presets_shared_contract_sections(kind_manifests: list[Manifest]) -> None:
    document = presets(kind_manifests)
    defaults = document["podDefaults"]
    assert (defaults["onFinishAction"], defaults["startupTimeoutSeconds"], defaults["imagePullPolicy"]) == (
        "delete_pod", 600, "IfNotPresent",
    )  # fmt: skip
    assert document["images"]["clickhouseTools"].rsplit(":", 1)[0] == IMAGE_REPOSITORIES["clickhouse-tools"]
    sync = document["clickhouseSync"]
    assert sync["profiles"]["demo-source"] == {
        "host": "clickhouse-source", "port": 9000, "user": "default", "secretName": "clickhouse-credentials",
        "passwordKey": "source-password", "secure": False, "verify": True,
    }  # fmt: skip
    assert sync["profiles"]["demo-destination"]["passwordKey"] == "destination-password"
    assert sync["source"] == {"profile": "demo-source", "database": "demo"}
    assert sync["destination"] == {"profile": "demo-destination", "database": "demo_copy"}
    assert sync["skipPatterns"] == ["copy", "test", "backup", "dict"]
    assert (sync["executeQueryOn"], sync["strategy"]) == ("source", "recreate")
    assert sync["clientConfigMap"] == f"{RELEASE}-clickhouse-client"


def test_presets_follow_the_image_settings() -> None:
    document = presets(render("values.yaml", "--set", "images.registry=registry.example.com",
                              "--set", "images.tag=0.1.0-abc"))  # fmt: skip
    assert (
        document["images"]["clickhouseTools"]
        == f"registry.example.com/{IMAGE_REPOSITORIES['clickhouse-tools']}:0.1.0-abc"
    )


def test_presets_helper_reads_the_rendered_document(manifests: list[Manifest], tmp_path, monkeypatch) -> None:
    """The DAG helper package (airflow_platform_pools) understands what the chart publishes."""
    pools_module = pytest.importorskip("airflow_platform_pools")
    path = tmp_path / "presets.json"
    path.write_text(json.dumps(presets(manifests)))
    monkeypatch.setenv("AIRFLOW_PLATFORM_PRESETS", str(path))
    pools_module._load.cache_clear()
    assert pools_module.pool_names() == sorted(POOLS["pools"])


def test_every_pool_needs_a_workload_namespace() -> None:
    namespace = {
        "name": "jobs",
        "pools": ["general", "ssd"],
        "quota": {},
        "limitRange": {"default": {}, "defaultRequest": {}},
    }
    workloads = json.dumps([namespace])
    error = render_error("--set-json", f"namespaces.workloads={workloads}")
    assert 'node pool "gpu" is not listed' in error


def test_job_pod_security_contexts_pass_restricted(manifests: list[Manifest]) -> None:
    """Job namespaces enforce `restricted`: the published security contexts must satisfy it."""
    defaults = presets(manifests)["podDefaults"]
    assert defaults["securityContext"]["runAsNonRoot"] is True
    assert defaults["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = defaults["containerSecurityContext"]
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"] == {"drop": ["ALL"]}
