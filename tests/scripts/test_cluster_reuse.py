"""`make cluster` reuses an existing kind cluster only when it was made from this checkout's node image
and kind config (scripts/cluster.py records a digest of both inside the control-plane node)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from scripts import cluster, config

IMAGE = "airflow-platform/kind-node:v9.9.9"


def digest_of(pools: dict, image: str = IMAGE, certs_d: Path | None = None) -> str:
    return cluster.config_digest(image, yaml.safe_dump(cluster.kind_config(pools, certs_d), sort_keys=False))


def test_the_digest_changes_with_everything_the_cluster_is_made_from(tmp_path: Path) -> None:
    pools = cluster.load_pools()
    relabelled = copy.deepcopy(pools)
    next(iter(relabelled.values()))["labels"]["example.com/extra"] = "x"
    retainted = copy.deepcopy(pools)
    next(iter(retainted.values())).setdefault("taints", []).append({"key": "k", "value": "v"})
    digests = {
        digest_of(pools),
        digest_of(relabelled),
        digest_of(retainted),
        digest_of(pools, image="airflow-platform/kind-node:v9.9.8"),
        digest_of(pools, certs_d=tmp_path / "certs.d"),  # registry mode
        digest_of(pools, certs_d=tmp_path / "other-checkout" / "certs.d"),
    }
    assert len(digests) == 6
    assert digest_of(pools) == digest_of(cluster.load_pools()), "the digest must be deterministic"


@pytest.fixture
def healthy_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    """A running cluster that answers (the parts that need Docker are what tests/cluster runs for real)."""
    monkeypatch.setattr(cluster, "stopped_nodes", lambda: [])
    monkeypatch.setattr(config, "registry_mode", lambda: False)
    monkeypatch.setattr(cluster, "export_kubeconfig", lambda: None)
    monkeypatch.setattr(cluster, "api_answers", lambda: True)


@pytest.mark.usefixtures("healthy_cluster")
@pytest.mark.parametrize("recorded", ["", "0" * 64, "f" * 63])
def test_a_cluster_made_from_another_config_is_not_reused(
    monkeypatch: pytest.MonkeyPatch, recorded: str
) -> None:
    monkeypatch.setattr(cluster, "stored_digest", lambda: recorded)
    problem = cluster.reuse_problem("a" * 64)
    assert problem is not None
    assert "another node image or kind config" in problem
    assert "aaaaaaaaaaaa" in problem, "the message names this checkout's digest"


@pytest.mark.usefixtures("healthy_cluster")
def test_a_cluster_made_from_this_config_is_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cluster, "stored_digest", lambda: "a" * 64)
    assert cluster.reuse_problem("a" * 64) is None
