"""DAG bundles (values `dags`): the generated bundle list, git connections, credential placement and
the validation of every field, rendered with the real helm binary."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.facts import WORKER_NAMESPACE

from .rendering import (
    AIRFLOW_NAMESPACES,
    NAMESPACE,
    RELEASE,
    Manifest,
    airflow_cfg,
    env_of,
    executor_pod_template,
    find,
    of_kind,
    render,
    render_error,
)

LOCAL_BUNDLE = "airflow.dag_processing.bundles.local.LocalDagBundle"
GIT_BUNDLE = "airflow_platform_pools.bundles.GitDagBundle"
TOKEN_BUNDLE = {
    "name": "team-a",
    "url": "https://git.example.com/team-a/dags.git",
    "ref": "release/2026",
    "subdir": "dags/prod",
    "refreshInterval": 45,
    "credentials": {"secretName": "team-a-git", "type": "token", "username": "ci-bot", "tokenKey": "pat"},
}
SSH_BUNDLE = {
    "name": "team_b",
    "url": "git@git.example.com:team-b/dags.git",
    "credentials": {"secretName": "team-b-ssh", "type": "ssh"},
}
PUBLIC_BUNDLE = {"name": "public", "url": "https://git.example.com/open/dags.git"}


def with_bundles(*bundles: dict[str, Any], extra: tuple[str, ...] = ()) -> list[Manifest]:
    return render("values.yaml", "--set-json", f"dags.bundles={json.dumps(list(bundles))}", *extra)


def bundle_list(manifests: list[Manifest], namespace: str = NAMESPACE) -> list[dict[str, Any]]:
    return json.loads(airflow_cfg(manifests, namespace)["dag_processor"]["dag_bundle_config_list"])


def container(manifests: list[Manifest], component: str) -> dict[str, Any]:
    spec = find(manifests, "Deployment", f"{RELEASE}-{component}", NAMESPACE)["spec"]["template"]["spec"]
    return spec["containers"][0]


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion of an env value."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m[1], m[0]), value)


@pytest.fixture(scope="module")
def token_and_ssh() -> list[Manifest]:
    return with_bundles(TOKEN_BUNDLE, SSH_BUNDLE, PUBLIC_BUNDLE)


PLATFORM_BUNDLE = {
    "name": "dags-folder",
    "classpath": LOCAL_BUNDLE,
    "kwargs": {"path": "/opt/airflow/dags", "refresh_interval": 300},
}


@pytest.fixture(scope="module")
def defaults() -> list[Manifest]:
    return render("values.yaml")


def test_default_is_the_baked_in_folder_only(defaults: list[Manifest]) -> None:
    for namespace in AIRFLOW_NAMESPACES:
        assert bundle_list(defaults, namespace) == [PLATFORM_BUNDLE]


def test_kind_registers_the_e2e_repository_of_its_test_git_server(kind_manifests: list[Manifest]) -> None:
    platform, e2e = bundle_list(kind_manifests)
    assert platform == PLATFORM_BUNDLE
    server = f"{RELEASE}-git-server"
    assert e2e["kwargs"]["repo_url"] == f"http://{server}.{NAMESPACE}.svc.cluster.local:8080/e2e.git"
    token = env_of(container(kind_manifests, "dag-processor"))["AIRFLOW_PLATFORM_GIT_TOKEN_GIT_E2E"]
    assert token["valueFrom"]["secretKeyRef"]["name"] == server
    git_server = find(kind_manifests, "Deployment", server, NAMESPACE)["spec"]["template"]["spec"]
    assert env_of(git_server["containers"][0])["GIT_REPOSITORIES"]["value"] == "e2e"


def test_git_bundles_follow_the_values(token_and_ssh: list[Manifest]) -> None:
    bundles = {b["name"]: b for b in bundle_list(token_and_ssh)}
    assert list(bundles) == ["dags-folder", "team-a", "team_b", "public"]
    assert bundles["team-a"] == {
        "name": "team-a",
        "classpath": GIT_BUNDLE,
        "kwargs": {
            "repo_url": TOKEN_BUNDLE["url"],
            "tracking_ref": "release/2026",
            "subdir": "dags/prod",
            "refresh_interval": 45,
            "git_conn_id": "git_team_a",
        },
    }
    assert bundles["team_b"]["kwargs"] == {
        "repo_url": SSH_BUNDLE["url"],
        "tracking_ref": "main",
        "refresh_interval": 60,
        "git_conn_id": "git_team_b",
    }
    assert "git_conn_id" not in bundles["public"]["kwargs"], "a public repository needs no connection"
    # worker pods read the same airflow.cfg: they check out their run's version of the same bundles
    assert bundle_list(token_and_ssh, WORKER_NAMESPACE) == bundle_list(token_and_ssh)


def test_token_connection_is_valid_json_with_the_secret_token(token_and_ssh: list[Manifest]) -> None:
    env = env_of(container(token_and_ssh, "dag-processor"))
    token_var = env["AIRFLOW_PLATFORM_GIT_TOKEN_GIT_TEAM_A"]
    assert token_var["valueFrom"]["secretKeyRef"] == {"name": "team-a-git", "key": "pat", "optional": True}
    token = "ghp_0123456789abcdefABCDEF-_."
    connection = json.loads(
        expand(env["AIRFLOW_CONN_GIT_TEAM_A"]["value"], {"AIRFLOW_PLATFORM_GIT_TOKEN_GIT_TEAM_A": token})
    )
    assert connection == {
        "conn_type": "git",
        "host": TOKEN_BUNDLE["url"],
        "login": "ci-bot",
        "password": token,
    }


def test_token_reaches_only_dag_processor_and_api_server(token_and_ssh: list[Manifest]) -> None:
    for component in ("dag-processor", "api-server"):
        assert "AIRFLOW_CONN_GIT_TEAM_A" in env_of(container(token_and_ssh, component)), component
    for component in ("scheduler", "triggerer"):
        names = set(env_of(container(token_and_ssh, component)))
        assert not {n for n in names if "GIT" in n}, f"{component} must hold no git credential"
    worker_env = env_of(executor_pod_template(token_and_ssh)["spec"]["containers"][0])
    assert "AIRFLOW_CONN_GIT_TEAM_A" not in worker_env
    assert "AIRFLOW_PLATFORM_GIT_TOKEN_GIT_TEAM_A" not in worker_env


def test_ssh_key_is_mounted_where_git_runs(token_and_ssh: list[Manifest]) -> None:
    for label, pod in (
        ("dag-processor", find(token_and_ssh, "Deployment", f"{RELEASE}-dag-processor")["spec"]["template"]),
        ("worker", executor_pod_template(token_and_ssh)),
    ):
        spec = pod["spec"]
        volume = {v["name"]: v for v in spec["volumes"]}["git-team-b"]
        assert volume["secret"] == {
            "secretName": "team-b-ssh",
            "optional": True,
            "defaultMode": 0o440,
            "items": [
                {"key": "ssh-privatekey", "path": "ssh-privatekey"},
                {"key": "known_hosts", "path": "known_hosts"},
            ],
        }, label
        main = spec["containers"][0]
        mount = {m["name"]: m for m in main["volumeMounts"]}["git-team-b"]
        connection = json.loads(env_of(main)["AIRFLOW_CONN_GIT_TEAM_B"]["value"])
        assert connection["extra"] == {
            "key_file": f"{mount['mountPath']}/ssh-privatekey",
            "known_hosts_file": f"{mount['mountPath']}/known_hosts",
            "strict_host_key_checking": "yes",
        }, label
        assert mount["readOnly"] is True
    api_server = container(token_and_ssh, "api-server")
    assert "AIRFLOW_CONN_GIT_TEAM_B" not in env_of(api_server)
    assert "git-team-b" not in {m["name"] for m in api_server["volumeMounts"]}


def test_no_secret_value_is_rendered(token_and_ssh: list[Manifest]) -> None:
    """Credentials stay in their Secret: the chart only references them."""
    text = json.dumps(token_and_ssh)
    assert "BEGIN OPENSSH" not in text
    for secret in of_kind(token_and_ssh, "Secret"):
        assert secret["metadata"]["name"] not in {"team-a-git", "team-b-ssh"}


def test_platform_bundle_can_be_renamed_or_disabled() -> None:
    renamed = render("values.yaml", "--set", "dags.platformBundle.name=platform")
    assert [b["name"] for b in bundle_list(renamed)] == ["platform"]
    only_git = with_bundles(PUBLIC_BUNDLE, extra=("--set", "dags.platformBundle.enabled=false"))
    assert [b["name"] for b in bundle_list(only_git)] == ["public"]


def test_bundle_settings_reach_every_component(token_and_ssh: list[Manifest]) -> None:
    """One airflow.cfg (with the bundle list) in every Airflow container and the worker pods."""
    for component in ("api-server", "scheduler", "dag-processor", "triggerer"):
        mounts = {m["name"]: m["mountPath"] for m in container(token_and_ssh, component)["volumeMounts"]}
        assert mounts["config"] == "/opt/airflow/airflow.cfg", component
    worker = executor_pod_template(token_and_ssh)["spec"]["containers"][0]
    assert {m["name"]: m["mountPath"] for m in worker["volumeMounts"]}["config"] == "/opt/airflow/airflow.cfg"


def test_config_change_rolls_the_components(defaults: list[Manifest]) -> None:
    before = find(defaults, "Deployment", f"{RELEASE}-dag-processor")["spec"]["template"]["metadata"]
    after_manifests = render("values.yaml", "--set", "dags.platformBundle.refreshInterval=120")
    after = find(after_manifests, "Deployment", f"{RELEASE}-dag-processor")["spec"]["template"]["metadata"]
    assert before["annotations"]["checksum/config"] != after["annotations"]["checksum/config"]


BAD_BUNDLES: list[tuple[str, dict[str, Any], str]] = [
    ("uppercase name", {**PUBLIC_BUNDLE, "name": "Team"}, "dags/bundles/0/name"),
    ("name with a space", {**PUBLIC_BUNDLE, "name": "team a"}, "dags/bundles/0/name"),
    ("name too long", {**PUBLIC_BUNDLE, "name": "t" * 41}, "dags/bundles/0/name"),
    ("missing url", {"name": "x"}, "url"),
    ("ftp url", {**PUBLIC_BUNDLE, "url": "ftp://git.example.com/x.git"}, "dags/bundles/0/url"),
    ("file url", {**PUBLIC_BUNDLE, "url": "file:///srv/git/x.git"}, "dags/bundles/0/url"),
    ("relative path url", {**PUBLIC_BUNDLE, "url": "../x.git"}, "dags/bundles/0/url"),
    ("url with a quote", {**PUBLIC_BUNDLE, "url": 'https://git.example.com/x".git'}, "dags/bundles/0/url"),
    ("url with a space", {**PUBLIC_BUNDLE, "url": "https://git.example.com/a b.git"}, "dags/bundles/0/url"),
    (
        "url with $(...)",
        {**PUBLIC_BUNDLE, "url": "https://git.example.com/$(TOKEN).git"},
        "dags/bundles/0/url",
    ),
    (
        "url with a newline",
        {**PUBLIC_BUNDLE, "url": "https://git.example.com/x.git\n[core]"},
        "dags/bundles/0/url",
    ),
    ("url with %", {**PUBLIC_BUNDLE, "url": "https://git.example.com/a%20b.git"}, "dags/bundles/0/url"),
    ("ssh url with option", {**PUBLIC_BUNDLE, "url": "-oProxyCommand=x@h:p"}, "dags/bundles/0/url"),
    (
        "scp-like user is an option",
        {**PUBLIC_BUNDLE, "url": "-oX@git.example.com:x.git"},
        "dags/bundles/0/url",
    ),
    ("ssh host is an option", {**PUBLIC_BUNDLE, "url": "ssh://-oProxyCommand/x.git"}, "dags/bundles/0/url"),
    (
        "ssh user is an option",
        {**PUBLIC_BUNDLE, "url": "ssh://-oX@git.example.com/x.git"},
        "dags/bundles/0/url",
    ),
    (
        "ssh url with a password",
        {**PUBLIC_BUNDLE, "url": "ssh://git:secret@git.example.com/x.git"},
        "dags/bundles/0/url",
    ),
    ("ref with ..", {**PUBLIC_BUNDLE, "ref": "main..dev"}, "dags.bundles[0].ref"),
    ("ref starting with -", {**PUBLIC_BUNDLE, "ref": "--upload-pack=x"}, "dags/bundles/0/ref"),
    ("ref ending .lock", {**PUBLIC_BUNDLE, "ref": "main.lock"}, "dags.bundles[0].ref"),
    ("ref ending /", {**PUBLIC_BUNDLE, "ref": "release/"}, "dags.bundles[0].ref"),
    ("ref with a space", {**PUBLIC_BUNDLE, "ref": "my branch"}, "dags/bundles/0/ref"),
    (
        "subdir leaving the repository",
        {**PUBLIC_BUNDLE, "subdir": "dags/../../etc"},
        "dags.bundles[0].subdir",
    ),
    ("subdir ..", {**PUBLIC_BUNDLE, "subdir": ".."}, "dags.bundles[0].subdir"),
    ("absolute subdir", {**PUBLIC_BUNDLE, "subdir": "/etc"}, "dags/bundles/0/subdir"),
    ("zero refresh", {**PUBLIC_BUNDLE, "refreshInterval": 0}, "dags/bundles/0/refreshInterval"),
    ("refresh below 10 s", {**PUBLIC_BUNDLE, "refreshInterval": 5}, "dags/bundles/0/refreshInterval"),
    ("refresh as text", {**PUBLIC_BUNDLE, "refreshInterval": "60s"}, "dags/bundles/0/refreshInterval"),
    ("refresh above a day", {**PUBLIC_BUNDLE, "refreshInterval": 86401}, "dags/bundles/0/refreshInterval"),
    ("unknown field", {**PUBLIC_BUNDLE, "branch": "main"}, "dags/bundles/0"),
    (
        "credentials without a Secret",
        {**PUBLIC_BUNDLE, "credentials": {"type": "token"}},
        "dags/bundles/0/credentials",
    ),
    (
        "unknown credential type",
        {**PUBLIC_BUNDLE, "credentials": {"secretName": "s", "type": "password"}},
        "dags/bundles/0/credentials/type",
    ),
    (
        "Secret name not a Kubernetes name",
        {**PUBLIC_BUNDLE, "credentials": {"secretName": "My_Secret", "type": "token"}},
        "dags/bundles/0/credentials/secretName",
    ),
    (
        "username with a quote",
        {**PUBLIC_BUNDLE, "credentials": {"secretName": "s", "type": "token", "username": 'a"b'}},
        "dags/bundles/0/credentials/username",
    ),
    (
        "token over ssh",
        {**SSH_BUNDLE, "credentials": {"secretName": "s", "type": "token"}},
        "dags.bundles[0].credentials.type",
    ),
    (
        "ssh key over https",
        {**PUBLIC_BUNDLE, "credentials": {"secretName": "s", "type": "ssh"}},
        "dags.bundles[0].credentials.type",
    ),
    (
        "credentials in the url",
        {**PUBLIC_BUNDLE, "url": "https://bot:ghp_x@git.example.com/x.git"},
        "dags.bundles[0].url",
    ),
    ("plain http", {**PUBLIC_BUNDLE, "url": "http://git.example.com/x.git"}, "dags.bundles[0].url"),
]


@pytest.mark.parametrize(
    ("bundle", "key"), [(b, k) for _, b, k in BAD_BUNDLES], ids=[i for i, _, _ in BAD_BUNDLES]
)
def test_bad_bundle_is_rejected_naming_the_key(bundle: dict[str, Any], key: str) -> None:
    error = render_error("--set-json", f"dags.bundles={json.dumps([bundle])}")
    assert names_key(error, key), error


def names_key(error: str, key: str) -> bool:
    """The key in the chart's own form (dags.bundles[0].url) or the schema's (/dags/bundles/0/url)."""
    schema_form = "/" + re.sub(r"\[(\d+)\]", r"/\1", key).replace(".", "/")
    chart_form = re.sub(r"/(\d+)(?=/|$)", r"[\1]", key.lstrip("/")).replace("/", ".")
    return any(form in error for form in {key, schema_form, chart_form})


@pytest.mark.parametrize(
    "url",
    [
        "ssh://git@git.example.com/team-b/dags.git",
        "ssh://git@git.example.com:2222/team-b/dags.git",
        "ssh://git.example.com/team-b/dags.git",
        "git@git.example.com:team-b/dags.git",
    ],
)
def test_documented_ssh_url_forms_are_accepted(url: str) -> None:
    """values.yaml documents ssh://user@host[:port]/path: the schema refused the user part."""
    bundles = bundle_list(with_bundles({**SSH_BUNDLE, "url": url}))
    assert bundles[1]["kwargs"]["repo_url"] == url


def test_plain_http_is_allowed_when_asked_for() -> None:
    bundle = {**PUBLIC_BUNDLE, "url": "http://git-server.airflow.svc:8080/e2e.git", "allowPlainHttp": True}
    assert bundle_list(with_bundles(bundle))[1]["kwargs"]["repo_url"] == bundle["url"]


@pytest.mark.parametrize(
    ("bundles", "expected"),
    [
        (
            [PUBLIC_BUNDLE, PUBLIC_BUNDLE],
            'dags.bundles[1].name: bundle name "public" is already used by dags.bundles[0].name',
        ),
        ([{**PUBLIC_BUNDLE, "name": "dags-folder"}], "is already used by dags.platformBundle.name"),
        (
            [{**PUBLIC_BUNDLE, "name": "a-b"}, {**PUBLIC_BUNDLE, "name": "a_b"}],
            'same git connection id "git_a_b"',
        ),
    ],
    ids=["duplicate", "clash with the platform bundle", "connection id collision"],
)
def test_bundle_names_are_unique(bundles: list[dict[str, Any]], expected: str) -> None:
    assert expected in render_error("--set-json", f"dags.bundles={json.dumps(bundles)}")


def test_no_bundle_at_all_is_rejected() -> None:
    error = render_error("--set", "dags.platformBundle.enabled=false")
    assert "dags: no DAG bundle configured" in error


def test_bundle_list_cannot_be_set_in_airflow_config() -> None:
    error = render_error("--set", "airflow.config.dag_processor.dag_bundle_config_list=[]")
    assert "airflow.config.dag_processor.dag_bundle_config_list" in error
    assert "dags" in error


@pytest.mark.parametrize(
    ("setting", "key"),
    [
        ("dags.platformBundle.name=Platform", "dags/platformBundle/name"),
        ("dags.platformBundle.refreshInterval=1", "dags/platformBundle/refreshInterval"),
        ("dags.testGitServer.nodePort=80", "dags/testGitServer/nodePort"),
        ("dags.testGitServer.repositories[0]=../x", "dags/testGitServer/repositories/0"),
        ("dags.unknown=1", "dags"),
    ],
)
def test_bad_dags_setting_is_rejected(setting: str, key: str) -> None:
    assert key in render_error("--set", setting)


def test_test_git_server_is_off_by_default(defaults: list[Manifest]) -> None:
    assert not [m for m in defaults if m["metadata"]["name"].endswith("-git-server")]


def test_test_git_server_renders_restricted_with_generated_accounts() -> None:
    manifests = render(
        "values.yaml",
        "--set", "dags.testGitServer.enabled=true", "--set", "dags.testGitServer.nodePort=30418",
        "--set-json", 'dags.testGitServer.repositories=["e2e","team-dags"]',
    )  # fmt: skip
    name = f"{RELEASE}-git-server"
    secret = find(manifests, "Secret", name, NAMESPACE)
    assert set(secret["data"]) == {"reader-password", "writer-password"}
    assert secret["data"]["reader-password"] != secret["data"]["writer-password"]
    service = find(manifests, "Service", name, NAMESPACE)
    assert service["spec"]["type"] == "NodePort"
    assert service["spec"]["ports"][0]["nodePort"] == 30418
    pod = find(manifests, "Deployment", name, NAMESPACE)["spec"]["template"]["spec"]
    main = pod["containers"][0]
    env = env_of(main)
    assert env["GIT_REPOSITORIES"]["value"] == "e2e team-dags"
    assert env["GIT_READER_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": name, "key": "reader-password"}
    assert (env["GIT_READER_USER"]["value"], env["GIT_WRITER_USER"]["value"]) == ("airflow", "writer")
    assert main["image"].startswith("airflow-platform/git-server:")
    assert main["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    find(manifests, "NetworkPolicy", f"{name}-ingress", NAMESPACE)


def test_test_git_server_without_node_port_admits_only_airflow() -> None:
    manifests = render("values.yaml", "--set", "dags.testGitServer.enabled=true")
    name = f"{RELEASE}-git-server"
    assert find(manifests, "Service", name, NAMESPACE)["spec"]["type"] == "ClusterIP"
    policy = find(manifests, "NetworkPolicy", f"{name}-ingress", NAMESPACE)
    allowed = policy["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchExpressions"][0]["values"]
    assert allowed == list(AIRFLOW_NAMESPACES)
