"""The e2e git DAG bundle and the REST API, for the e2e modules that deliver DAGs the way a DAG author
does: values-kind.yaml deploys the test git server (dags.testGitServer) with an `e2e` repository,
registered as the bundle `e2e`. Tests push over its NodePort with the writer account (Repository) and
drive Airflow through REST API v2 (Api). The fixtures `api` and `repository` are in conftest.py.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import requests

from scripts import config, platform_api
from scripts.common import exclusive
from tests.bundle_dags import hello_dag
from tests.facts import RELEASE

GIT_SECRET = f"{RELEASE}-git-server"
GIT_SERVICE = f"{RELEASE}-git-server"
BUNDLE = "e2e"
REFRESH_BUDGET = 180  # seconds: bundle refresh (10 s) + re-parse + the api-server seeing it, with margin
PUSH_LOCK = config.CACHE / "e2e-bundle-push.lock"

# A template other e2e modules format with their own dag_id.
HELLO_DAG = hello_dag("{dag_id}", BUNDLE)


class Repository:
    """A working clone of the e2e repository, pushing over the NodePort as the writer."""

    def __init__(self, url: str, workdir: Path) -> None:
        self.path = workdir / "e2e"
        self._git("clone", "--quiet", url, str(self.path), cwd=workdir)

    def _git(self, *args: str, cwd: Path | None = None) -> str:
        env = {
            **os.environ,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_AUTHOR_NAME": "e2e",
            "GIT_AUTHOR_EMAIL": "e2e@example.com",
            "GIT_COMMITTER_NAME": "e2e",
            "GIT_COMMITTER_EMAIL": "e2e@example.com",
        }
        result = subprocess.run(["git", *args], cwd=cwd or self.path, env=env, capture_output=True, text=True)
        if result.returncode:
            raise RuntimeError(f"git {args[0]}: {result.stderr.strip()}")
        return result.stdout.strip()

    def push(self, files: dict[str, str | None], message: str) -> str:
        # Two lanes push to this repository (tests/conftest.py KIND_RELEASE_SHARED): one push at a time,
        # or the later of two pulls would be rejected as not fast-forward.
        with exclusive(PUSH_LOCK):
            return self._commit_and_push(files, message)

    def contains(self, commit: str, version: str) -> bool:
        """Whether bundle `version` (a commit of the repository) includes `commit`: another lane pushes
        to the same repository, so a run may get a later commit than the test's own."""
        self._git("fetch", "--quiet", "origin")
        result = subprocess.run(
            ["git", "merge-base", "--is-ancestor", commit, version],
            cwd=self.path,
            capture_output=True,
            text=True,
        )
        if result.returncode not in (0, 1):
            raise RuntimeError(f"git merge-base {commit} {version}: {result.stderr.strip()}")
        return result.returncode == 0

    def _commit_and_push(self, files: dict[str, str | None], message: str) -> str:
        self._git("pull", "--quiet", "--ff-only")
        for name, content in files.items():
            if content is None:
                (self.path / name).unlink()
            else:
                (self.path / name).parent.mkdir(parents=True, exist_ok=True)
                (self.path / name).write_text(content)
        self._git("add", "--all")
        self._git("commit", "--quiet", "--allow-empty", "-m", message)
        self._git("push", "--quiet", "origin", "HEAD:main")
        return self._git("rev-parse", "HEAD")


def wait_until(check: Any, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except requests.RequestException as error:
            last = str(error)
        time.sleep(3)
    raise TimeoutError(f"{what}: not after {timeout:.0f} s {last}")


class Api:
    def __init__(self) -> None:
        platform_api.wait_for_api_server()
        self.base = platform_api.ui_url()
        self.session = requests.Session()
        token = platform_api.access_token(self.base, platform_api.admin_password())
        self.session.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.session.request(method, f"{self.base}/api/v2{path}", timeout=30, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def exists(self, dag_id: str) -> bool:
        return self.session.get(f"{self.base}/api/v2/dags/{dag_id}", timeout=30).status_code == 200

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        self.call("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
        return self.call("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}})[
            "dag_run_id"
        ]

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}")

    def finished(self, dag_id: str, run_id: str, timeout: float = 600) -> dict[str, Any]:
        wait_until(
            lambda: self.run(dag_id, run_id)["state"] in {"success", "failed"}, f"{dag_id} {run_id}", timeout
        )
        return self.run(dag_id, run_id)

    def task_state(self, dag_id: str, run_id: str, task_id: str) -> str | None:
        return self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")["state"]

    def xcom(self, dag_id: str, run_id: str, task_id: str) -> Any:
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
        return self.call("GET", path)["value"]

    def versions(self, dag_id: str) -> list[dict[str, Any]]:
        return self.call("GET", f"/dags/{dag_id}/dagVersions", params={"order_by": "version_number"})[
            "dag_versions"
        ]

    def import_errors(self) -> list[dict[str, Any]]:
        return self.call("GET", "/importErrors", params={"limit": 100})["import_errors"]

    def set_variable(self, key: str, value: str) -> None:
        if self.session.get(f"{self.base}/api/v2/variables/{key}", timeout=30).status_code == 200:
            self.call("PATCH", f"/variables/{key}", json={"key": key, "value": value})
        else:
            self.call("POST", "/variables", json={"key": key, "value": value})
