"""Every values scenario, rendered by `helm template`, is accepted by the kind API server itself
(`kubectl apply --dry-run=server`): admission, defaulting and the semantic validation no schema has.
Namespaces a scenario names that the cluster lacks are created for the test and removed (and waited
for) afterwards.

The kind scenario is what the cluster runs, so it is dry-run as the live release (a no-op patch of
every object). Every other scenario is rendered as another release in another namespace: as the live
release it would be a patch of the live objects (a PVC "resize", a changed selector), which tests an
upgrade of the kind install rather than the scenario. (Their workload namespaces are shared with the
live release, so no other scenario may enable the demo ClickHouse or fixed nodePorts; the kind one
does both.)
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from scripts.common import wait_until
from tests.chart.rendering import CHART, HELM, NAMESPACE, RELEASE
from tests.chart.test_render_semantics import ALL_SCENARIOS as SCENARIOS
from tests.facts import ROOT

from .conftest import namespace_gone

pytestmark = pytest.mark.cluster

KUBECTL = str(ROOT / ".tools" / "bin" / "kubectl") if (ROOT / ".tools/bin/kubectl").exists() else "kubectl"
assert shutil.which(KUBECTL), "kubectl is missing: run `make tools`"
DRY_RUN_RELEASE = "dry-run"
DRY_RUN_NAMESPACE = "dry-run-control-plane"
LIVE_VALUES = (CHART / "values-kind.yaml").resolve()


def _release(scenario: str) -> tuple[str, str]:
    """Release name and namespace to render the scenario as."""
    if (CHART / scenario).resolve() == LIVE_VALUES:
        return RELEASE, NAMESPACE
    return DRY_RUN_RELEASE, DRY_RUN_NAMESPACE


def _render(scenario: str) -> str:
    release, namespace = _release(scenario)
    return subprocess.run(
        [str(HELM), "template", release, str(CHART), "--namespace", namespace,
         "--values", str(CHART / scenario)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip


@pytest.fixture(scope="module")
def namespaces(core: k8s.CoreV1Api) -> Iterator[Callable[[set[str]], None]]:
    """Creates the namespaces a scenario needs that the cluster lacks; all are removed after the last
    scenario (not between them: a namespace being deleted refuses new content for a while)."""
    created: list[str] = []

    def ensure(names: set[str]) -> None:
        for name in sorted(names):
            try:
                core.read_namespace(name)
            except ApiException as error:
                if error.status != 404:
                    raise
                labels = {"e2e": "dry-run"}
                core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name, labels=labels)))
                created.append(name)

    yield ensure
    for name in created:
        core.delete_namespace(name)
    # Gone, not only terminating: the production lane installs its release into some of these next
    # (tests/conftest.py E2E_LANES), and a terminating namespace refuses new objects.
    for name in created:
        wait_until(lambda name=name: namespace_gone(core, name), f"namespace {name} to be deleted", 180)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_api_server_accepts_the_render(namespaces: Callable[[set[str]], None], scenario: str) -> None:
    manifest = _render(scenario)
    documents = [d for d in yaml.safe_load_all(manifest) if d]
    namespaces(
        {_release(scenario)[1]}
        | {d["metadata"]["namespace"] for d in documents if d["metadata"].get("namespace")}
    )
    result = subprocess.run(
        [KUBECTL, "apply", "--dry-run=server", "-f", "-"], input=manifest, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("(server dry run)") == len(documents)
