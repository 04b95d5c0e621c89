"""Loading images into kind nodes: a failed load is retried node by node and, when it still fails,
the error carries kind's own message and the free disk space (CI once showed only an exit status)."""

from __future__ import annotations

import pytest

from scripts import images

NODES = ["cp", "worker", "worker2"]
REF = "airflow-platform/airflow:0.1.0-abc"


def fake_kind(monkeypatch: pytest.MonkeyPatch, failing: dict[str, int]) -> list[list[str]]:
    """kind load that fails `failing[node]` more times for each node named (a fault a real cluster
    cannot be made to show on demand); returns the node lists it was called with."""
    calls: list[list[str]] = []

    def run_kind_load(cluster: str, nodes: list[str], ref: str) -> str | None:
        calls.append(list(nodes))
        broken = [node for node in nodes if failing.get(node, 0) > 0]
        for node in broken:
            failing[node] -= 1
        if broken:
            return f"ERROR: failed to load image: ctr: import on {broken[0]}: no space left on device"
        return None

    monkeypatch.setattr(images, "run_kind_load", run_kind_load)
    return calls


def test_a_load_that_works_is_one_kind_call(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_kind(monkeypatch, {})
    images.kind_load("c", NODES, REF)
    assert calls == [NODES]


def test_a_passing_failure_is_retried_per_node_only(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_kind(monkeypatch, {"worker2": 1})
    images.kind_load("c", NODES, REF)
    assert calls == [NODES, ["cp"], ["worker"], ["worker2"]]


def test_a_lasting_failure_names_the_node_kinds_error_and_free_space(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_kind(monkeypatch, {"worker": 5})
    with pytest.raises(RuntimeError) as raised:
        images.kind_load("c", NODES, REF)
    message = str(raised.value)
    assert f"kind load docker-image {REF} failed on worker:" in message
    assert "no space left on device" in message
    assert "GiB free" in message and "temporary directory" in message
    assert "cp:" not in message


def test_run_kind_load_reports_the_tools_own_error(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """The real subprocess path: a kind binary that fails prints its error, which comes back."""
    fake = tmp_path / "kind"
    fake.write_text("#!/bin/sh\necho 'ERROR: failed to load image: exit status 1' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(images, "kind_binary", lambda: str(fake))
    assert images.run_kind_load("c", NODES, REF) == "ERROR: failed to load image: exit status 1"


def test_stale_refs_are_only_the_projects_other_content_tags() -> None:
    refs = [
        "airflow-platform/airflow:0.1.0-927a3c6bbe02",  # stale
        "airflow-platform/airflow:0.1.0-abcdefabcdef",  # current
        "localhost:5001/airflow-platform/clickhouse-tools:0.1.0-927a3c6bbe02",  # stale, pushed copy
        "airflow-platform/registry:0.1.0-111111111111",  # the tool image's own tag: kept
        "airflow-platform/debian-base:bookworm",  # not a content tag
        "airflow-platform/airflow:release-1",  # IMAGES_TAG of a person: never ours to remove
        "other/airflow:0.1.0-927a3c6bbe02",  # someone else's
        "kindest/node:v1.33.1",
        "<none>:<none>",
    ]
    stale = images.stale_refs(refs, {"0.1.0-abcdefabcdef", "0.1.0-111111111111"})
    assert stale == [
        "airflow-platform/airflow:0.1.0-927a3c6bbe02",
        "localhost:5001/airflow-platform/clickhouse-tools:0.1.0-927a3c6bbe02",
    ]


@pytest.mark.parametrize(
    ("roles", "expected"),
    [
        (
            {"c-control-plane": "control-plane", "c-worker": "worker", "c-worker2": "worker"},
            ["c-worker", "c-worker2"],
        ),
        ({"c-control-plane": "control-plane"}, ["c-control-plane"]),  # one node: kind leaves it untainted
        ({"a": "control-plane", "b": "control-plane", "w": "worker"}, ["w"]),  # HA control plane
    ],
)
def test_images_go_only_to_nodes_that_run_pods(
    monkeypatch: pytest.MonkeyPatch, roles: dict[str, str], expected: list[str]
) -> None:
    monkeypatch.setattr(images, "kind_nodes", lambda cluster: list(roles))
    monkeypatch.setattr(images, "kind_role", roles.__getitem__)
    assert images.workload_nodes("c") == expected
