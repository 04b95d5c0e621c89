"""`make up` (scripts.up): every phase in this process, in order, with the image tag computed once and
handed down; nothing in scripts/ calls make back."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from scripts import cluster, config, images, node_image, platform_api, registry, shell_steps, up

TAG = "9.9.9-0123456789ab"


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[object]:
    """Every phase replaced by a recorder (the real ones need Docker and a cluster: tests/e2e runs them)."""
    calls: list[object] = []

    def record(name: str):
        return lambda *args: calls.append((name, *args))

    monkeypatch.setattr(images, "image_tag", lambda: calls.append("tag") or TAG)
    monkeypatch.setattr(shell_steps, "tools", record("tools"))
    monkeypatch.setattr(shell_steps, "docker_engine", record("docker"))
    monkeypatch.setattr(node_image, "main", record("node image"))
    monkeypatch.setattr(cluster, "up", record("cluster"))
    monkeypatch.setattr(images, "build", lambda selected, tag: calls.append(("build", tag)))
    monkeypatch.setattr(images, "load", lambda selected, tag: calls.append(("load", tag)))
    monkeypatch.setattr(registry, "push_for_install", lambda tag: calls.append(("push", tag)))
    monkeypatch.delenv("PLATFORM_REGISTRY", raising=False)
    monkeypatch.delenv("PLATFORM_UP_DAG_RUN", raising=False)
    monkeypatch.setattr(platform_api, "helm_upgrade_install", record("install"))
    monkeypatch.setattr(platform_api, "wait_for_api_server", record("ready"))
    monkeypatch.setattr(
        platform_api, "run_dag_once", lambda dag_id: calls.append(("dag", dag_id)) or "success"
    )
    monkeypatch.setattr(platform_api, "ui_url", lambda: "http://192.0.2.1:30080")
    monkeypatch.setattr(config, "TIMINGS_FILE", tmp_path / "timings.json")
    return calls


def test_the_tag_is_computed_once_and_every_phase_gets_it(recorded: list[object]) -> None:
    up.main()
    assert recorded.count("tag") == 1
    assert recorded == [
        "tag", ("tools",), ("docker",), ("node image",), ("cluster",),
        ("build", TAG), ("load", TAG), ("install", TAG), ("ready",), ("dag", up.SYNC_DAG_ID),
    ]  # fmt: skip
    timings = json.loads(config.TIMINGS_FILE.read_text())["up"]
    assert list(timings) == [phase.name for phase in up.phases(TAG)]


def test_e2e_mode_installs_without_the_dag_run(
    recorded: list[object], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`make e2e` (PLATFORM_UP_DAG_RUN=0): every phase up to ready, no DAG run, and the summary says so
    instead of claiming a success."""
    monkeypatch.setenv("PLATFORM_UP_DAG_RUN", "0")
    up.main()
    assert recorded[-1] == ("ready",)
    assert "dag run" not in json.loads(config.TIMINGS_FILE.read_text())["up"]
    assert f"{up.SYNC_DAG_ID}: not run (PLATFORM_UP_DAG_RUN=0)" in capsys.readouterr().out


@pytest.mark.parametrize("value", ["", "yes", "true", " 0"])
def test_dag_run_switch_refuses_other_values(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("PLATFORM_UP_DAG_RUN", value)
    with pytest.raises(ValueError, match="PLATFORM_UP_DAG_RUN must be 0 or 1"):
        up.phases(TAG)


def test_registry_mode_pushes_instead_of_loading(
    recorded: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make e2e`: the nodes pull from the local registry, so nothing is `kind load`ed (containerd's CRI
    forgets a loaded reference once the same image is pulled under the registry's name)."""
    monkeypatch.setenv("PLATFORM_REGISTRY", "1")
    up.main()
    assert ("push", TAG) in recorded
    assert not [call for call in recorded if call[:1] == ("load",)]
    assert [phase.name for phase in up.phases(TAG)][5] == "push"


def test_registry_mode_installs_with_the_registry_and_its_credential(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    user = {"username": "airflow-platform", "password": "s3cret"}
    monkeypatch.setattr(registry, "credentials", lambda: user)
    monkeypatch.setattr(registry, "PULL_VALUES", tmp_path / "pull.values.yaml")
    monkeypatch.setenv("PLATFORM_REGISTRY", "0")
    assert platform_api.registry_install_args() == []
    monkeypatch.setenv("PLATFORM_REGISTRY", "1")
    args = platform_api.registry_install_args()
    assert args == ["--values", str(tmp_path / "pull.values.yaml")]
    values = json.loads(Path(args[1]).read_text())
    assert values == {"images": {"registry": config.REGISTRY_HOST, "pullCredentials": user}}
    assert Path(args[1]).stat().st_mode & 0o777 == 0o600  # a password: not on the command line either
    modified = Path(args[1]).stat().st_mtime_ns
    assert platform_api.registry_install_args() == args  # same path and content: same install fingerprint
    assert Path(args[1]).stat().st_mtime_ns == modified


def test_a_failing_phase_is_named_with_where_to_look(
    recorded: list[object], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken() -> None:
        raise RuntimeError("no nodes")

    monkeypatch.setattr(cluster, "up", broken)
    with pytest.raises(SystemExit):
        up.main()
    err = capsys.readouterr().err
    assert "phase 'cluster' failed" in err and "no nodes" in err
    assert f"kind export logs --name {config.CLUSTER_NAME}" in err
    assert ("build", TAG) not in recorded, "no phase runs after a failed one"


def test_no_script_calls_make() -> None:
    sources = sorted((config.ROOT / "scripts").rglob("*.py")) + sorted(
        (config.ROOT / "scripts").rglob("*.sh")
    )
    callers = [
        path.relative_to(config.ROOT) for path in sources
        if re.search(r"""(["']make["']|^\s*make\s)""", path.read_text(), re.MULTILINE)
    ]  # fmt: skip
    assert callers == []
