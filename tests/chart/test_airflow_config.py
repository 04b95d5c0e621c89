"""airflow.cfg keys the platform depends on, and the executor pod template."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.facts import IMAGE_REPOSITORIES, WORKER_NAMESPACE

from .rendering import (
    NAMESPACE,
    RELEASE,
    ROOT,
    Manifest,
    airflow_cfg,
    executor_pod_template,
    find,
    helm,
    render,
    render_error,
    template_args,
)

WORKERS = WORKER_NAMESPACE


def test_required_airflow_cfg(manifests: list[Manifest]) -> None:
    cfg = airflow_cfg(manifests)
    assert cfg["core"]["executor"] == "KubernetesExecutor"
    assert cfg["core"]["execution_api_server_url"] == (
        f"http://{RELEASE}-api-server.{NAMESPACE}.svc.cluster.local:8080/execution/"
    )
    assert cfg["core"]["dags_folder"] == "/opt/airflow/dags"
    assert cfg["core"]["load_examples"] == "False"
    if "fab" in cfg:  # values-production.yaml
        assert cfg["core"]["auth_manager"].endswith("FabAuthManager")
        assert "simple_auth_manager_users" not in cfg["core"]
    else:
        assert cfg["core"]["auth_manager"].endswith("SimpleAuthManager")
        assert cfg["core"]["simple_auth_manager_users"] == "admin:admin"
    assert cfg["kubernetes_executor"]["namespace"] == WORKERS
    assert cfg["kubernetes_executor"]["multi_namespace_mode"] == "False"
    assert (
        cfg["kubernetes_executor"]["pod_template_file"] == "/opt/airflow/pod_templates/pod_template_file.yaml"
    )
    assert int(cfg["kubernetes_executor"]["worker_pods_creation_batch_size"]) >= 4
    assert cfg["kubernetes_executor"]["delete_worker_pods"] == "True"
    assert int(cfg["scheduler"]["task_queued_timeout"]) >= 600
    assert "base_url" not in cfg["api"] or cfg["api"]["base_url"].startswith("https://")


def test_worker_namespace_gets_the_same_config(manifests: list[Manifest]) -> None:
    assert airflow_cfg(manifests, WORKERS) == airflow_cfg(manifests)


def test_no_secret_option_in_airflow_cfg(manifests: list[Manifest]) -> None:
    cfg = airflow_cfg(manifests)
    options = {(section, key) for section, values in cfg.items() for key in values}
    for secret in (("core", "fernet_key"), ("database", "sql_alchemy_conn"), ("api_auth", "jwt_secret"),
                   ("api", "secret_key")):  # fmt: skip
        assert secret not in options


def test_user_config_merges_but_cannot_override_platform_settings() -> None:
    manifests = render(
        "values.yaml",
        "--set", "airflow.config.core.parallelism=48",
        "--set", "airflow.config.webserver.instance_name=Team",
    )  # fmt: skip
    cfg = airflow_cfg(manifests)
    assert cfg["core"]["parallelism"] == "48"
    assert cfg["core"]["executor"] == "KubernetesExecutor"
    assert cfg["webserver"]["instance_name"] == "Team"
    # An option the chart sets is refused (it used to be replaced without a word).
    error = render_error("--set", "airflow.config.core.executor=LocalExecutor")
    assert "airflow.config.core.executor: [core] executor is set by the chart" in error


@pytest.mark.parametrize(
    "option", ["core.fernet_key", "database.sql_alchemy_conn", "api_auth.jwt_secret", "api.secret_key"]
)
def test_secret_options_refused_in_config(option: str) -> None:
    error = render_error("--set", f"airflow.config.{option}=plaintext")
    assert f"airflow.config.{option}" in error


def test_executor_pod_template(manifests: list[Manifest]) -> None:
    pod = executor_pod_template(manifests)
    spec = pod["spec"]
    (base,) = spec["containers"]
    assert base["name"] == "base"
    assert "command" not in base and "args" not in base
    assert base["image"].rsplit(":", 1)[0].endswith(IMAGE_REPOSITORIES["airflow"])
    assert spec["serviceAccountName"] == f"{RELEASE}-worker"
    assert spec["restartPolicy"] == "Never"
    mounts = {m["mountPath"]: m["name"] for m in base["volumeMounts"]}
    assert mounts["/opt/airflow/platform"] == "pool-presets"
    assert mounts["/opt/airflow/logs"] == "logs"
    assert mounts["/opt/airflow/airflow.cfg"] == "config"
    env = {e["name"]: e for e in base["env"]}
    assert env["AIRFLOW_PLATFORM_PRESETS"]["value"] == "/opt/airflow/platform/presets.json"
    # worker pods talk to the execution API only: no database or key material at all
    assert not any(
        name.startswith(("AIRFLOW__DATABASE", "AIRFLOW__CORE__FERNET", "AIRFLOW__API")) for name in env
    )


def test_pod_template_is_mounted_into_scheduler(manifests: list[Manifest]) -> None:
    spec = find(manifests, "Deployment", f"{RELEASE}-scheduler", NAMESPACE)["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m["name"] for m in spec["containers"][0]["volumeMounts"]}
    volume = next(v for v in spec["volumes"] if v["name"] == mounts["/opt/airflow/pod_templates"])
    assert volume["configMap"]["name"] == f"{RELEASE}-pod-template"


def test_every_airflow_container_mounts_presets(manifests: list[Manifest]) -> None:
    for component in ("api-server", "scheduler", "dag-processor", "triggerer"):
        spec = find(manifests, "Deployment", f"{RELEASE}-{component}")["spec"]["template"]["spec"]
        mounts = {m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
        assert "/opt/airflow/platform" in mounts, component


def test_kind_logs_shared_between_control_plane_and_workers(kind_manifests: list[Manifest]) -> None:
    for namespace in (NAMESPACE, WORKERS):
        claim = find(kind_manifests, "PersistentVolumeClaim", f"{RELEASE}-logs", namespace)
        volume = find(kind_manifests, "PersistentVolume", claim["spec"]["volumeName"])
        assert volume["spec"]["claimRef"] == {"namespace": namespace, "name": f"{RELEASE}-logs"}
        assert volume["spec"]["hostPath"]["path"] == "/tmp"
    template = executor_pod_template(kind_manifests)
    logs = next(v for v in template["spec"]["volumes"] if v["name"] == "logs")
    assert logs["persistentVolumeClaim"]["claimName"] == f"{RELEASE}-logs"
    for component in ("api-server", "scheduler", "triggerer"):
        spec = find(kind_manifests, "Deployment", f"{RELEASE}-{component}")["spec"]["template"]["spec"]
        logs = next(v for v in spec["volumes"] if v["name"] == "logs")
        assert logs["persistentVolumeClaim"]["claimName"] == f"{RELEASE}-logs", component


def test_kind_api_server_is_a_node_port(kind_manifests: list[Manifest]) -> None:
    service = find(kind_manifests, "Service", f"{RELEASE}-api-server", NAMESPACE)
    assert service["spec"]["type"] == "NodePort"
    assert service["spec"]["ports"][0]["port"] == 8080


def test_production_has_replicas_and_disruption_budgets() -> None:
    manifests = render("values-production.yaml")
    for component in ("api-server", "scheduler", "dag-processor", "triggerer"):
        assert find(manifests, "Deployment", f"{RELEASE}-{component}")["spec"]["replicas"] == 2
        assert find(manifests, "PodDisruptionBudget", f"{RELEASE}-{component}")
    cfg = airflow_cfg(manifests)
    assert cfg["api"]["base_url"] == "https://airflow.example.com"
    assert cfg["core"]["parallelism"] == "128"


def test_airflow_cfg_passes_airflow_config_lint(manifests: list[Manifest], tmp_path) -> None:
    """Airflow 3.3 itself (the .venv's, same pin as the image) finds no removed or renamed option."""
    (tmp_path / "airflow.cfg").write_text(
        find(manifests, "ConfigMap", f"{RELEASE}-config", NAMESPACE)["data"]["airflow.cfg"]
    )
    result = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "airflow"), "config", "lint"],
        capture_output=True, text=True, check=False,
        env={**os.environ, "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__UNIT_TEST_MODE": "False"},
    )  # fmt: skip
    issues = [line for line in result.stdout.splitlines() if line.strip().startswith("- ")]
    # the only note: KubernetesExecutor differs from Airflow's default executor, on purpose
    assert [issue for issue in issues if "default value of `executor`" not in issue] == []


PERCENT_VALUES = {
    "log_format": "[%(asctime)s] %(levelname)s - %(message)s",  # a Python logging format
    "simple_log_format": "100% done %",  # lone percent signs
    "log_filename_template": "%%already-doubled%%",  # a user who escaped it themselves gets it literally
}


def test_percent_signs_in_airflow_config_reach_airflow_literally(tmp_path) -> None:
    """airflow.cfg interpolates %(name)s: a raw % stopped Airflow's start (InterpolationMissingOptionError
    at logging set-up). Airflow's own config parser reads each value back exactly as given."""
    sets = [f"--set-string=airflow.config.logging.{key}={value.replace(',', chr(92) + ',')}"
            for key, value in PERCENT_VALUES.items()]  # fmt: skip
    manifests = render("values.yaml", *sets)
    assert {key: airflow_cfg(manifests)["logging"][key] for key in PERCENT_VALUES} == PERCENT_VALUES
    cfg = tmp_path / "airflow.cfg"
    cfg.write_text(find(manifests, "ConfigMap", f"{RELEASE}-config", NAMESPACE)["data"]["airflow.cfg"])
    program = (
        "import json; from airflow.configuration import conf; "
        f"print(json.dumps({{k: conf.get('logging', k) for k in {sorted(PERCENT_VALUES)!r}}}))"
    )
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "AIRFLOW_CONFIG": str(cfg)}
    result = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), "-c", program],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == PERCENT_VALUES


def airflow_option_metadata() -> dict[tuple[str, str], dict]:
    """Every option of the pinned Airflow's own config.yml (the venv's Airflow is the image's version)."""
    import airflow

    config_yml = Path(airflow.__file__).parent / "config_templates" / "config.yml"
    sections = yaml.safe_load(config_yml.read_text())
    return {
        (section, option): meta or {}
        for section, body in sections.items()
        for option, meta in (body.get("options") or {}).items()
    }


def test_every_option_airflow_calls_sensitive_is_refused_in_airflow_config() -> None:
    sensitive = sorted(key for key, meta in airflow_option_metadata().items() if meta.get("sensitive"))
    assert sensitive, "Airflow's config.yml marks no option sensitive: the test reads the wrong file"
    for section, option in sensitive:
        error = render_error("--set-string", f"airflow.config.{section}.{option}=x")
        assert "secret" in error or "set by the chart" in error, (section, option, error)


def test_options_airflow_does_not_call_sensitive_are_not_refused_as_secrets() -> None:
    """Names the chart's secret pattern matches, but Airflow says hold no secret (a path, a class)."""
    metadata = airflow_option_metadata()
    pattern = re.compile(
        r"(?i)(password|passwd|secret|fernet_key|sql_alchemy_conn|token|credential|api_?key|access_?key|private_?key$|_dsn$)"
    )
    harmless = [key for key, meta in metadata.items() if pattern.search(key[1]) and not meta.get("sensitive")]
    assert ("workers", "secrets_backend") in harmless
    for section, option in harmless:
        result = helm(
            *template_args("values.yaml"), "--set-string", f"airflow.config.{section}.{option}=x", check=False
        )
        assert "secrets must not be set" not in result.stderr, (section, option, result.stderr)


def test_a_plain_env_value_of_a_sensitive_option_is_refused_and_valuefrom_works() -> None:
    variable = {"name": "AIRFLOW__SECRETS__BACKEND_KWARGS", "value": '{"role_arn": "x"}'}
    error = render_error("--set-json", f"airflow.env={json.dumps([variable])}")
    assert "must not be a plain value" in error, error
    from_secret = {"name": variable["name"], "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}
    assert render("values.yaml", "--set-json", f"airflow.env={json.dumps([from_secret])}")
    plain_class = {"name": "AIRFLOW__WORKERS__SECRETS_BACKEND", "value": "my.Backend"}
    assert render("values.yaml", "--set-json", f"airflow.env={json.dumps([plain_class])}")
