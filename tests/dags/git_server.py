"""The platform's git server (images/git-server/git_http_server.py) as a local process, plus a pusher.

The same program the test image runs: `git http-backend` behind basic auth, a read-only account for
Airflow and a writer account for the test.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests

from tests.clickhouse.servers import free_port

from .live_airflow import wait_until

ROOT = Path(__file__).resolve().parents[2]
SERVER = ROOT / "images" / "git-server" / "git_http_server.py"
READER, WRITER = "airflow", "writer"


@dataclass
class GitServer:
    base_url: str
    reader_password: str
    writer_password: str
    workdir: Path
    log: Path
    heads: dict[tuple[str, str], str] = field(default_factory=dict)  # (repository, branch) -> last push

    def url(self, repository: str) -> str:
        return f"{self.base_url}/{repository}.git"

    def push(self, repository: str, files: dict[str, str | None], message: str, branch: str = "main") -> str:
        """Commits files (None deletes one) on top of `main` and pushes that to `branch` as the writer."""
        clone = self.workdir / "clones" / repository
        authenticated = self.url(repository).replace("://", f"://{WRITER}:{self.writer_password}@")
        if not clone.exists():
            git("clone", "--quiet", authenticated, str(clone), cwd=self.workdir)
        git("pull", "--quiet", "--ff-only", cwd=clone)
        for name, content in files.items():
            path = clone / name
            if content is None:
                path.unlink()
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(content)
        git("add", "--all", cwd=clone)
        git("commit", "--quiet", "-m", message, cwd=clone)
        git("push", "--quiet", "origin", f"HEAD:{branch}", cwd=clone)
        self.heads[(repository, branch)] = git("rev-parse", "HEAD", cwd=clone)
        return self.heads[(repository, branch)]


def git(*args: str, cwd: Path) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
        "GIT_TERMINAL_PROMPT": "0",
    }
    result = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"git {args[0]} failed: {result.stderr.strip()}")
    return result.stdout.strip()


@contextmanager
def git_server(repositories: list[str]) -> Iterator[GitServer]:
    workdir = Path(tempfile.mkdtemp(prefix="airflow-platform-git-"))
    port = free_port()
    server = GitServer(
        f"http://127.0.0.1:{port}", secrets.token_urlsafe(16), secrets.token_urlsafe(16), workdir,
        workdir / "server.log",
    )  # fmt: skip
    env = {
        **os.environ,
        "GIT_PROJECT_ROOT": str(workdir / "srv"),
        "GIT_SERVER_PORT": str(port),
        "GIT_REPOSITORIES": " ".join(repositories),
        "GIT_READER_USER": READER,
        "GIT_READER_PASSWORD": server.reader_password,
        "GIT_WRITER_USER": WRITER,
        "GIT_WRITER_PASSWORD": server.writer_password,
    }
    with server.log.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, str(SERVER)], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        wait_until(
            lambda: requests.get(f"{server.base_url}/healthz", timeout=2).ok, "git server", 30, [server.log]
        )
        yield server
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
