"""The local OCI registry for real (`docker` marker): scripts.registry starts it (images/registry, TLS
with the generated CA, htpasswd auth); images and the packaged chart go in with the generated
credential and come out only with it, over TLS verified with the CA (never --insecure)."""

from __future__ import annotations

import base64
import io
import subprocess
import tarfile
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts import config, registry

pytestmark = pytest.mark.docker


def run(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(arg) for arg in args], capture_output=True, text=True, env=env or config.tool_env(), check=False
    )


@pytest.fixture(scope="module")
def running() -> Iterator[None]:
    """The registry container up (kept when it already runs with this configuration)."""
    registry.up()
    registry.login()
    yield


@pytest.fixture(scope="module")
def probe_image(running: None) -> Iterator[str]:
    """A one-file image made with `docker import` (no base image needed), pushed to the registry."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        payload = uuid.uuid4().hex.encode()
        info = tarfile.TarInfo("probe.txt")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    ref = f"{config.REGISTRY_HOST}/{config.PROJECT}/registry-probe:{uuid.uuid4().hex[:12]}"
    subprocess.run(["docker", "import", "-", ref], input=buffer.getvalue(), check=True, capture_output=True)
    pushed = run("docker", "push", ref, env=registry.client_env())
    assert pushed.returncode == 0, pushed.stderr
    yield ref
    run("docker", "rmi", "-f", ref)


def anonymous_env(tmp_path: Path) -> dict[str, str]:
    """Docker and Helm clients without any login (an empty client configuration)."""
    (tmp_path / "docker").mkdir(exist_ok=True)
    return {**config.tool_env(), "DOCKER_CONFIG": str(tmp_path / "docker")}


def test_every_request_needs_the_credential_over_verified_tls(running: None) -> None:
    assert registry.answers()  # /v2/ answers 401 over TLS verified with the generated CA
    unverified = run("curl", "-sS", "-o", "/dev/null", f"https://{config.REGISTRY_HOST}/v2/")
    assert unverified.returncode != 0 and "certificate" in unverified.stderr


def manifest_status(image: str, credential: tuple[str, str] | None) -> int:
    """HTTP status of GET /v2/<name>/manifests/<tag> over TLS verified with the generated CA."""
    name, tag = image.removeprefix(f"{config.REGISTRY_HOST}/").rsplit(":", 1)
    request = urllib.request.Request(
        f"https://{config.REGISTRY_HOST}/v2/{name}/manifests/{tag}",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    if credential:
        token = base64.b64encode(":".join(credential).encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10, context=registry.ssl_context()) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_a_pull_without_credentials_is_refused(probe_image: str, tmp_path: Path) -> None:
    user = registry.credentials()
    assert manifest_status(probe_image, None) == 401
    assert manifest_status(probe_image, (user["username"], "wrong")) == 401
    assert manifest_status(probe_image, (user["username"], user["password"])) == 200
    run("docker", "rmi", "-f", probe_image)
    refused = run("docker", "pull", probe_image, env=anonymous_env(tmp_path))
    assert refused.returncode != 0
    assert run("docker", "image", "inspect", probe_image).returncode != 0


def test_a_pull_with_the_credential_is_accepted(probe_image: str) -> None:
    run("docker", "rmi", "-f", probe_image)
    pulled = run("docker", "pull", probe_image, env=registry.client_env())
    assert pulled.returncode == 0, pulled.stderr
    assert run("docker", "image", "inspect", probe_image).returncode == 0


def test_a_wrong_password_is_refused(running: None, tmp_path: Path) -> None:
    env = anonymous_env(tmp_path)
    login = subprocess.run(
        ["docker", "login", config.REGISTRY_HOST, "-u", registry.USERNAME, "--password-stdin"],
        input="not-the-password",
        capture_output=True,
        text=True,
        env=env,
    )
    assert login.returncode != 0 and "unauthorized" in login.stderr.lower()


@pytest.fixture(scope="module")
def pushed_chart(running: None) -> str:
    return registry.push_chart()


def test_the_chart_pushed_as_oci_artifact_is_pulled_and_rendered(pushed_chart: str, tmp_path: Path) -> None:
    version = config.chart_metadata()["version"]
    auth = ["--ca-file", str(registry.CA_CERT), "--registry-config", str(registry.HELM_REGISTRY_CONFIG)]
    pulled = run("helm", "pull", pushed_chart, "--version", version, "--destination", tmp_path, *auth)
    assert pulled.returncode == 0, pulled.stderr
    assert (tmp_path / f"{config.PROJECT}-{version}.tgz").is_file()
    rendered = run(
        "helm", "template", "airflow-platform", pushed_chart, "--version", version, *auth,
        "--namespace", config.AIRFLOW_NAMESPACE, "--values", config.KIND_VALUES,
        "--set", f"images.registry={config.REGISTRY_HOST}", "--set", "images.tag=0.1.0-test",
    )  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr
    assert f"image: {config.REGISTRY_HOST}/{config.PROJECT}/airflow:0.1.0-test" in rendered.stdout


def test_the_chart_is_refused_without_credentials_or_without_the_ca(
    pushed_chart: str, tmp_path: Path
) -> None:
    version = config.chart_metadata()["version"]
    anonymous = ["--registry-config", str(tmp_path / "none.json")]
    without_login = run("helm", "pull", pushed_chart, "--version", version, "--ca-file", registry.CA_CERT,
                        *anonymous, "--destination", tmp_path)  # fmt: skip
    assert without_login.returncode != 0
    # oras (Helm's registry client) answers the registry's 401 Basic challenge with this
    assert "basic credential not found" in without_login.stderr or "401" in without_login.stderr
    login = ["--registry-config", str(registry.HELM_REGISTRY_CONFIG)]
    without_ca = run("helm", "pull", pushed_chart, "--version", version, *login, "--destination", tmp_path)
    assert without_ca.returncode != 0 and "certificate" in without_ca.stderr
