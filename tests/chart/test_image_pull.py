"""One image pull credential for every pod (images.pullCredentials / images.pullSecrets) and per-image
tag and digest overrides (images.<key>.tag|digest), rendered by the real helm binary."""

from __future__ import annotations

import base64
import json

import pytest

from tests import facts
from tests.chart.admission import PodRequest, Policy
from tests.chart.rendering import (
    CHART,
    NAMESPACE,
    RELEASE,
    Manifest,
    of_kind,
    pod_specs,
    presets,
    render,
    render_error,
)

REGISTRY = "registry.example.com:5000"
SECRET = f"{RELEASE}-image-pull"
CREDENTIALS = (
    "--set", f"images.registry={REGISTRY}",
    "--set", "images.pullCredentials.username=puller",
    "--set", "images.pullCredentials.password=s3cret:with/odd+chars",
)  # fmt: skip
DIGEST = "sha256:" + "0123456789abcdef" * 4
EVERY_NAMESPACE = (NAMESPACE, facts.WORKER_NAMESPACE, *facts.WORKLOAD_NAMESPACES)
# A job pod as an executor worker pod launches it, for the admission policy (tests/chart/admission.py).
WORKER = f"system:serviceaccount:{facts.WORKER_NAMESPACE}:{RELEASE}-worker"
JOB_POD_SPEC = {
    "serviceAccountName": "airflow-workload",
    "containers": [{"name": "base", "image": "busybox"}],
}


@pytest.fixture(scope="module")
def with_credentials() -> list[Manifest]:
    return render("values-kind.yaml", *CREDENTIALS)


def cronjob_pod_specs(manifests: list[Manifest]) -> list[tuple[str, dict]]:
    return [
        (f"CronJob/{m['metadata']['name']}", m["spec"]["jobTemplate"]["spec"]["template"]["spec"])
        for m in of_kind(manifests, "CronJob")
    ]


def every_pod_spec(manifests: list[Manifest]) -> list[tuple[str, dict]]:
    return [*pod_specs(manifests), *cronjob_pod_specs(manifests)]


def test_the_credential_becomes_a_dockerconfigjson_secret_in_every_namespace(
    with_credentials: list[Manifest],
) -> None:
    secrets = [m for m in of_kind(with_credentials, "Secret") if m["metadata"]["name"] == SECRET]
    assert sorted(m["metadata"]["namespace"] for m in secrets) == sorted(EVERY_NAMESPACE)
    for secret in secrets:
        assert secret["type"] == "kubernetes.io/dockerconfigjson"
        config = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
        entry = config["auths"][REGISTRY]
        assert (entry["username"], entry["password"]) == ("puller", "s3cret:with/odd+chars")
        assert base64.b64decode(entry["auth"]).decode() == "puller:s3cret:with/odd+chars"


def test_every_pod_kind_references_the_secret(with_credentials: list[Manifest]) -> None:
    specs = every_pod_spec(with_credentials)
    labels = {label.split("/")[0] for label, _ in specs}
    assert {"Deployment", "StatefulSet", "Job", "CronJob", "executor-pod-template"} <= labels
    for label, spec in specs:
        assert {"name": SECRET} in spec.get("imagePullSecrets", []), label


def test_job_pods_get_the_secret_from_the_presets_and_the_policy_allows_it(
    with_credentials: list[Manifest],
) -> None:
    for namespace in (NAMESPACE, facts.WORKER_NAMESPACE):
        assert presets(with_credentials, namespace)["podDefaults"]["imagePullSecrets"] == [SECRET]
    policy = Policy.of(with_credentials)
    spec = {**JOB_POD_SPEC, "imagePullSecrets": [{"name": SECRET}]}
    for namespace in facts.WORKLOAD_NAMESPACES:
        assert policy.denials(PodRequest({"metadata": {}, "spec": spec}, namespace, WORKER)) == []


def test_named_pull_secrets_reach_every_pod_and_the_allow_list_too() -> None:
    manifests = render("values-kind.yaml", "--set", "images.pullSecrets[0]=corp-pull", *CREDENTIALS)
    for label, spec in every_pod_spec(manifests):
        assert spec["imagePullSecrets"] == [{"name": "corp-pull"}, {"name": SECRET}], label
    assert presets(manifests)["podDefaults"]["imagePullSecrets"] == ["corp-pull", SECRET]
    policy = Policy.of(manifests)
    spec = {**JOB_POD_SPEC, "imagePullSecrets": [{"name": "corp-pull"}, {"name": SECRET}]}
    for namespace in facts.WORKLOAD_NAMESPACES:
        assert policy.denials(PodRequest({"metadata": {}, "spec": spec}, namespace, WORKER)) == []


def test_pull_secrets_named_twice_are_referenced_once() -> None:
    """A list merged from several values files repeats names; so may pullSecrets and the chart's own
    Secret. Duplicates are dropped (in order): server-side apply refuses two imagePullSecrets of one
    name (the list is keyed by name), and the job-pod presets would pass both to every pod."""
    manifests = render(
        "values-kind.yaml",
        *("--set-json", f'images.pullSecrets=["corp-pull", "team-pull", "corp-pull", "{SECRET}"]'),
        *CREDENTIALS,
    )
    expected = ["corp-pull", "team-pull", SECRET]
    for label, spec in every_pod_spec(manifests):
        assert spec["imagePullSecrets"] == [{"name": name} for name in expected], label
    assert presets(manifests)["podDefaults"]["imagePullSecrets"] == expected


def test_without_a_credential_nothing_is_added() -> None:
    manifests = render("values-kind.yaml")
    assert not [m for m in of_kind(manifests, "Secret") if m["metadata"]["name"] == SECRET]
    assert all("imagePullSecrets" not in spec for _, spec in every_pod_spec(manifests))
    assert "imagePullSecrets" not in presets(manifests)["podDefaults"]


def test_the_credential_may_name_its_own_registry() -> None:
    manifests = render(
        "values-kind.yaml",
        *("--set", "images.pullCredentials.registry=other.example.com"),
        *("--set", "images.pullCredentials.username=u", "--set", "images.pullCredentials.password=p"),
    )
    secret = next(m for m in of_kind(manifests, "Secret") if m["metadata"]["name"] == SECRET)
    assert list(json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))["auths"]) == [
        "other.example.com"
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "images.pullCredentials.username=u"], "images.pullCredentials.password: required"),
        (["--set", "images.pullCredentials.password=p"], "images.pullCredentials.username: required"),
        (
            ["--set", "images.pullCredentials.username=u", "--set", "images.pullCredentials.password=p"],
            "images.pullCredentials.registry: required when images.registry is empty",
        ),
        (["--set", "images.pullCredentials.registry=https://x"], "/images/pullCredentials/registry"),
        (["--set", "images.pullCredentials.token=x"], "pullCredentials"),
    ],
    ids=["no-password", "no-username", "no-registry", "registry-url", "unknown-key"],
)
def test_incomplete_credentials_are_refused_naming_the_key(args: list[str], message: str) -> None:
    assert message in render_error("--values", str(CHART / "values-kind.yaml"), *args)


def images_of(manifests: list[Manifest]) -> set[str]:
    return {
        container["image"]
        for _, spec in every_pod_spec(manifests)
        for container in [*spec.get("containers", []), *spec.get("initContainers", [])]
    }


def test_a_digest_pins_one_image_and_a_tag_overrides_another() -> None:
    manifests = render(
        "values-kind.yaml",
        *("--set", f"images.registry={REGISTRY}", "--set", "images.tag=1.0.0"),
        *("--set", f"images.airflow.digest={DIGEST}", "--set", "images.airflow.tag=ignored"),
        *("--set", "images.postgres.tag=15-patched"),
    )
    found = images_of(manifests)
    assert f"{REGISTRY}/airflow-platform/airflow@{DIGEST}" in found
    assert f"{REGISTRY}/airflow-platform/postgres:15-patched" in found
    assert f"{REGISTRY}/airflow-platform/clickhouse-server:1.0.0" in found
    assert not any("airflow-platform/airflow:" in image for image in found)
    # the job pods' image of the sync DAG comes from the presets, with the same rule
    assert (
        presets(manifests)["images"]["clickhouseTools"]
        == f"{REGISTRY}/airflow-platform/clickhouse-tools:1.0.0"
    )


@pytest.mark.parametrize(
    "digest",
    ["sha256:abc", "sha512:" + "0" * 64, "sha256:" + "A" * 64, "0" * 64, f"{DIGEST}\nx"],
    ids=["short", "sha512", "uppercase", "no-algorithm", "newline"],
)
def test_bad_digests_are_refused_naming_the_key(digest: str) -> None:
    error = render_error("--set-string", f"images.clickhouseTools.digest={digest}")
    assert "/images/clickhouseTools/digest" in error and "does not match pattern" in error


def test_a_bad_digest_is_refused_by_the_template_too_without_the_schema() -> None:
    error = render_error("--skip-schema-validation", "--set", "images.postgres.digest=sha256:abc")
    assert 'images.postgres.digest: "sha256:abc" is not an image digest' in error


def test_a_per_image_latest_tag_needs_pull_always() -> None:
    error = render_error("--set", "images.airflow.tag=latest")
    assert 'images.airflow.tag: "latest" is a mutable tag' in error
    render("values.yaml", "--set", "images.airflow.tag=latest", "--set", "images.pullPolicy=Always")
