"""The chart's side of the sync DAG and pool helper: profiles, bootstrap Job, client configs, e-mail."""

from __future__ import annotations

import pytest

from tests.chart.rendering import find, of_kind, presets, render, render_error
from tests.facts import RELEASE, WORKLOAD_NAMESPACES

PROFILE = "presets.clickhouseSync.profiles.demo-source"
SYNC = "/presets/clickhouseSync"
PROFILE_KEY = f"{SYNC}/profiles/demo-source"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["--set", f"{PROFILE}.host=$(cat /etc/passwd)"], f"{PROFILE_KEY}/host"),
        (["--set", f"{PROFILE}.host=a b"], f"{PROFILE_KEY}/host"),
        (["--set", f"{PROFILE}.user=$(id)"], f"{PROFILE_KEY}/user"),
        (["--set", f"{PROFILE}.passwordKey=a/b"], f"{PROFILE_KEY}/passwordKey"),
        (["--set", "presets.clickhouseSync.profiles.Bad_Name.host=x"], "Bad_Name"),
        (["--set", "presets.clickhouseSync.destination.database=system"], f"{SYNC}/destination"),
        (["--set", "presets.clickhouseSync.source.database=a;b"], f"{SYNC}/source/database"),
        (["--set", "presets.clickhouseSync.strategy=copy"], f"{SYNC}/strategy"),
        (["--set", "presets.clickhouseSync.skipPatterns={$(x)}"], f"{SYNC}/skipPatterns"),
        (["--set", "presets.clickhouseSync.source.profile=nope"], "is not a profile"),
        (["--set", "presets.clickhouseSync.destination.profile=demo-source",
          "--set", "presets.clickhouseSync.destination.database=demo"], "default destination is the source"),
        (["--set", "presets.notifications.enabled=true"], "/presets/notifications"),
        (["--set", "presets.notifications.to={a@b.c}", "--set", "presets.notifications.from=x y@z"],
         "/presets/notifications/from"),
    ],
)  # fmt: skip
def test_bad_sync_settings_fail_at_install_naming_the_key(values: list[str], message: str) -> None:
    assert message in render_error("--values", "charts/airflow-platform/values.yaml", *values)


def test_client_configs_exist_in_every_workload_namespace() -> None:
    manifests = render("values.yaml")
    for namespace in WORKLOAD_NAMESPACES:
        data = find(manifests, "ConfigMap", f"{RELEASE}-clickhouse-client", namespace)["data"]
        assert set(data) == {"plain.xml", "tls-verify.xml", "tls-no-verify.xml"}
        assert "<verificationMode>strict</verificationMode>" in data["tls-verify.xml"]
        assert "<verificationMode>none</verificationMode>" in data["tls-no-verify.xml"]


def test_bootstrap_job_writes_pools_and_smtp_connection_with_the_secret_password() -> None:
    manifests = render(
        "values.yaml",
        "--set", "presets.notifications.enabled=true", "--set", "presets.notifications.to={ops@example.com}",
        "--set", "presets.notifications.smtp.host=smtp.example.com",
        "--set", "presets.notifications.smtp.passwordSecret.name=smtp-login",
    )  # fmt: skip
    (job,) = [job for job in of_kind(manifests, "Job") if "bootstrap" in job["metadata"]["name"]]
    assert job["metadata"]["labels"]["app.kubernetes.io/component"] == "airflow-bootstrap"
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["python", "-m", "airflow_platform_pools.bootstrap"]
    assert [c["name"] for c in pod["initContainers"]] == ["wait-for-migrations"]
    password = next(env for env in container["env"] if env["name"] == "PLATFORM_SMTP_PASSWORD")
    assert password["valueFrom"]["secretKeyRef"] == {"name": "smtp-login", "key": "password"}
    policy = find(manifests, "NetworkPolicy", f"{RELEASE}-postgres-ingress")
    allowed = policy["spec"]["ingress"][0]["from"][0]["podSelector"]["matchExpressions"][1]["values"]
    assert "airflow-bootstrap" in allowed
    notifications = presets(manifests)["notifications"]
    assert notifications["smtp"]["host"] == "smtp.example.com"
    assert "password" not in notifications["smtp"]  # only the Secret's name reaches the presets


def test_no_bootstrap_job_when_there_is_nothing_to_write() -> None:
    manifests = render("values.yaml", "--set", "presets.airflowPools.enabled=false")
    assert not [job for job in of_kind(manifests, "Job") if "bootstrap" in job["metadata"]["name"]]
