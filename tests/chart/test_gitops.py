"""GitOps (issue #13): every generated Secret can be named instead, renders are then reproducible,
an upgrade never silently replaces a missing generated Secret, no object name follows the revision."""

from __future__ import annotations

import base64
import re
import subprocess
from pathlib import Path

from .fake_kube_api import fake_kube_api
from .rendering import (
    CHART,
    NAMESPACE,
    RELEASE,
    Manifest,
    find,
    helm,
    of_kind,
    parse_manifests,
    pod_specs,
    render,
    render_error,
    template_args,
)
from .test_secrets import as_previous_release

EXISTING = [
    "--set",
    "secrets.fernetKey.existingSecret=gitops-fernet",
    "--set",
    "secrets.jwtSecret.existingSecret=gitops-jwt",
    "--set",
    "secrets.apiSecretKey.existingSecret=gitops-api",
    "--set",
    "secrets.adminPassword.existingSecret=gitops-admin",
    "--set",
    "postgres.existingSecret=gitops-postgres",
    "--set",
    "postgres.existingSecretKey=pw",
    "--set",
    "clickhouse.generateCredentials=false",
    "--set",
    "dags.testGitServer.enabled=false",  # test fixtures of the kind values, not GitOps material
    "--set",
    "airflow.logs.testObjectStore.enabled=false",
    "--set",
    "airflow.logs.remote.enabled=false",
]


def template(*extra: str) -> str:
    return helm(*template_args("values-kind.yaml"), *extra).stdout


def upgrade_against(existing: list[Manifest], workdir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """`helm template --is-upgrade --dry-run=server`: what `helm upgrade` renders against that cluster."""
    with fake_kube_api(existing, workdir) as kubeconfig:
        return helm(
            *template_args("values-kind.yaml"),
            "--is-upgrade",
            "--dry-run=server",
            "--disable-openapi-validation",
            "--kubeconfig",
            str(kubeconfig),
            *extra,
            check=False,
        )


def test_named_secrets_make_renders_reproducible() -> None:
    """What Argo CD / Flux do: render twice without a cluster. Nothing random, nothing generated."""
    first, second = template(*EXISTING), template(*EXISTING)
    assert first == second
    manifests = parse_manifests(first)
    assert of_kind(manifests, "Secret") == []


def test_control_renders_differ_when_secrets_are_generated() -> None:
    assert template() != template()


def test_postgres_password_from_an_existing_secret() -> None:
    manifests = render("values-kind.yaml", *EXISTING)
    statefulset = find(manifests, "StatefulSet", f"{RELEASE}-postgres", NAMESPACE)
    volume = next(v for v in statefulset["spec"]["template"]["spec"]["volumes"] if v["name"] == "secret")
    assert volume["secret"] == {"secretName": "gitops-postgres", "items": [{"key": "pw", "path": "password"}]}
    for name, spec in pod_specs(manifests):
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            env = {variable["name"]: variable for variable in container.get("env", [])}
            if "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" not in env:
                continue
            assert env["AIRFLOW_PLATFORM_DB_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
                "name": "gitops-postgres",
                "key": "pw",
            }, name
            names = list(env)
            # Kubernetes expands $(VAR) only from variables defined earlier in the list
            assert names.index("AIRFLOW_PLATFORM_DB_PASSWORD") < names.index(
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"
            )
            assert "$(AIRFLOW_PLATFORM_DB_PASSWORD)@" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]["value"]


def test_upgrade_with_a_generated_secret_missing_fails(tmp_path: Path) -> None:
    installed = [as_previous_release(s) for s in of_kind(render("values-kind.yaml"), "Secret")]
    fernet = f"{RELEASE}-fernet-key"
    result = upgrade_against([s for s in installed if s["metadata"]["name"] != fernet], tmp_path)
    assert result.returncode != 0
    assert f"Secret {NAMESPACE}/{fernet} (key fernet-key) is missing" in result.stderr, result.stderr
    assert "secrets.regenerateMissing" in result.stderr


def test_upgrade_with_every_secret_present_keeps_them(tmp_path: Path) -> None:
    installed = [as_previous_release(s) for s in of_kind(render("values-kind.yaml"), "Secret")]
    result = upgrade_against(installed, tmp_path)
    assert result.returncode == 0, result.stderr
    upgraded = {(s["metadata"]["name"]): s["data"] for s in of_kind(parse_manifests(result.stdout), "Secret")}
    assert upgraded == {s["metadata"]["name"]: s["data"] for s in installed}


def test_regenerate_missing_is_an_explicit_choice(tmp_path: Path) -> None:
    installed = [as_previous_release(s) for s in of_kind(render("values-kind.yaml"), "Secret")]
    admin = f"{RELEASE}-admin"
    result = upgrade_against(
        [s for s in installed if s["metadata"]["name"] != admin],
        tmp_path,
        "--set",
        "secrets.regenerateMissing=true",
    )
    assert result.returncode == 0, result.stderr
    regenerated = find(parse_manifests(result.stdout), "Secret", admin, NAMESPACE)
    assert len(base64.b64decode(regenerated["data"]["password"])) >= 16


def test_upgrade_without_generated_secrets_needs_no_lookup() -> None:
    """GitOps upgrade: every Secret named, so an upgrade render succeeds without any cluster state."""
    assert "kind: Job" in template("--is-upgrade", *EXISTING)
    assert "is missing" in render_error("--values", str(CHART / "values-kind.yaml"), "--is-upgrade")


def test_no_object_name_depends_on_the_revision() -> None:
    for path in (CHART / "templates").rglob("*"):
        if path.is_file():
            code = re.sub(r"/\*.*?\*/", "", path.read_text(), flags=re.DOTALL)  # comments may mention it
            assert ".Release.Revision" not in code, path


def job_names(*extra: str) -> set[str]:
    return {job["metadata"]["name"] for job in of_kind(render("values-kind.yaml", *extra), "Job")}


def test_job_names_change_only_with_what_the_jobs_run() -> None:
    base = job_names()
    assert job_names() == base  # an unchanged re-render keeps the immutable Jobs
    image = job_names("--set", "images.tag=2.0.0")
    assert image.isdisjoint(base)  # a new image runs both Jobs again
    rerun = job_names("--set", "airflow.migrateDatabase.runId=restore-1")
    assert {n for n in rerun if "-migrate-" in n}.isdisjoint(base)
    assert {n for n in rerun if "demo-data" in n} <= base
