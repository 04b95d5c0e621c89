"""The platform's git server (images/git-server): who may read, who may push, and what it refuses."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from .git_server import READER, SERVER, WRITER, GitServer, git, git_server

REPOSITORY = "team"


@pytest.fixture(scope="module")
def server() -> Iterator[GitServer]:
    with git_server([REPOSITORY, "other"]) as running:
        yield running


def with_credentials(url: str, user: str, password: str) -> str:
    return url.replace("://", f"://{user}:{password}@")


def git_status(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)


def test_new_repository_has_a_main_branch(server: GitServer, tmp_path: Path) -> None:
    url = with_credentials(server.url("other"), READER, server.reader_password)
    refs = git("ls-remote", url, cwd=tmp_path)
    assert "refs/heads/main" in refs


def test_writer_pushes_and_reader_clones_it(server: GitServer, tmp_path: Path) -> None:
    commit = server.push(REPOSITORY, {"dags/a.py": "A = 1\n"}, "add a")
    url = with_credentials(server.url(REPOSITORY), READER, server.reader_password)
    git("clone", "--quiet", url, str(tmp_path / "clone"), cwd=tmp_path)
    assert (tmp_path / "clone" / "dags" / "a.py").read_text() == "A = 1\n"
    assert git("rev-parse", "HEAD", cwd=tmp_path / "clone") == commit


def test_large_push_in_chunks_arrives_intact(server: GitServer, tmp_path: Path) -> None:
    """git sends bodies over http.postBuffer (1 MiB) with chunked transfer encoding."""
    payload = os.urandom(3 * 1024 * 1024).hex()
    commit = server.push(REPOSITORY, {"data/big.txt": payload}, "big")
    url = with_credentials(server.url(REPOSITORY), READER, server.reader_password)
    git("clone", "--quiet", url, str(tmp_path / "clone"), cwd=tmp_path)
    assert (tmp_path / "clone" / "data" / "big.txt").read_text() == payload
    assert git("rev-parse", "HEAD", cwd=tmp_path / "clone") == commit


def test_reader_cannot_push(server: GitServer, tmp_path: Path) -> None:
    server.push(REPOSITORY, {"dags/b.py": "B = 1\n"}, "add b")
    url = with_credentials(server.url(REPOSITORY), READER, server.reader_password)
    clone = tmp_path / "clone"
    git("clone", "--quiet", url, str(clone), cwd=tmp_path)
    (clone / "evil.py").write_text("x = 1\n")
    git("add", "evil.py", cwd=clone)
    git("commit", "--quiet", "-m", "evil", cwd=clone)
    result = git_status("push", "origin", "HEAD:main", cwd=clone)
    assert result.returncode != 0
    assert "read-only" in result.stderr
    heads = git("ls-remote", url, "refs/heads/main", cwd=tmp_path)
    assert heads.split()[0] != git("rev-parse", "HEAD", cwd=clone)


@pytest.mark.parametrize(
    ("user", "password"),
    [(READER, "wrong"), (WRITER, ""), ("nobody", "x")],
    ids=["wrong password", "empty password", "unknown user"],
)
def test_bad_credentials_are_refused(server: GitServer, tmp_path: Path, user: str, password: str) -> None:
    result = git_status("ls-remote", with_credentials(server.url(REPOSITORY), user, password), cwd=tmp_path)
    assert result.returncode != 0
    assert "Authentication failed" in result.stderr


def test_no_credentials_get_a_basic_auth_challenge(server: GitServer) -> None:
    response = requests.get(
        f"{server.url(REPOSITORY)}/info/refs", params={"service": "git-upload-pack"}, timeout=10
    )
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic ")


def test_reader_password_does_not_open_the_writer_account(server: GitServer) -> None:
    response = requests.get(
        f"{server.url(REPOSITORY)}/info/refs",
        params={"service": "git-receive-pack"},
        auth=(WRITER, server.reader_password),
        timeout=10,
    )
    assert response.status_code == 401


@pytest.mark.parametrize("path", ["/../../etc/passwd", "/team.git/../../../etc/passwd", "/%2e%2e/etc/passwd"])
def test_paths_outside_the_repositories_are_refused(server: GitServer, path: str) -> None:
    response = requests.get(
        server.base_url + path, auth=(READER, server.reader_password), timeout=10, allow_redirects=False
    )
    assert response.status_code in {400, 403, 404}
    assert "root:" not in response.text


def test_unknown_repository_is_not_found(server: GitServer, tmp_path: Path) -> None:
    url = with_credentials(server.url("missing"), READER, server.reader_password)
    result = git_status("ls-remote", url, cwd=tmp_path)
    assert result.returncode != 0
    assert "not found" in result.stderr.lower() or "404" in result.stderr


def test_health_needs_no_credentials(server: GitServer) -> None:
    assert requests.get(f"{server.base_url}/healthz", timeout=10).text == "ok\n"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GIT_READER_PASSWORD": ""}, "set GIT_READER_PASSWORD or GIT_READER_PASSWORD_FILE"),
        ({"GIT_SERVER_PORT": "http"}, "GIT_SERVER_PORT must be a port number"),
        ({"GIT_REPOSITORIES": "../escape"}, "is not a repository name"),
        ({"GIT_WRITER_USER": "same", "GIT_READER_USER": "same"}, "must differ"),
    ],
)
def test_bad_configuration_stops_with_a_clear_error(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    base = {
        "PATH": os.environ["PATH"],
        "GIT_PROJECT_ROOT": str(tmp_path / "srv"),
        "GIT_SERVER_PORT": "1",
        "GIT_REPOSITORIES": "ok",
        "GIT_READER_USER": "r",
        "GIT_READER_PASSWORD": "rp",
        "GIT_WRITER_USER": "w",
        "GIT_WRITER_PASSWORD": "wp",
    }
    result = subprocess.run(
        [sys.executable, str(SERVER)], env={**base, **env}, capture_output=True, text=True, timeout=30
    )
    assert result.returncode != 0
    assert message in result.stderr
    assert not (tmp_path / "srv" / "..escape.git").exists()
