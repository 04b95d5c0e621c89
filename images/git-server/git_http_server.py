"""Smart-HTTP git server: Debian's `git http-backend` (CGI) behind a small HTTP server with basic auth.

Two accounts: a *reader* (clone/fetch only: what Airflow's GitDagBundle gets) and a *writer* (may also
push: what a team's CI, or the e2e test, gets). Repositories named in GIT_REPOSITORIES are created on
start as bare repositories whose default branch holds one commit (a README), so a bundle that follows
`main` finds it before anyone pushed.

Environment (passwords also as *_FILE, read from a mounted Secret):
    GIT_PROJECT_ROOT      where the bare repositories live (default /srv/git)
    GIT_SERVER_PORT       listening port (default 8080)
    GIT_REPOSITORIES      space-separated repository names to create, e.g. "team-dags e2e"
    GIT_DEFAULT_BRANCH    branch of the initial commit (default main)
    GIT_READER_USER, GIT_READER_PASSWORD
    GIT_WRITER_USER, GIT_WRITER_PASSWORD

Usage: python3 git_http_server.py   (GET /healthz answers without authentication)
"""

from __future__ import annotations

import base64
import hmac
import os
import re
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

REPOSITORY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
PUSH_SERVICE = "git-receive-pack"
CHUNK = 64 * 1024


def log(message: str) -> None:
    print(f"[git-server] {message}", file=sys.stderr, flush=True)


def setting(name: str, default: str | None = None) -> str:
    """An environment setting, or the content of the file named by NAME_FILE."""
    if os.environ.get(f"{name}_FILE"):
        return Path(os.environ[f"{name}_FILE"]).read_text().strip()
    value = os.environ.get(name, default)
    if value is None or value == "":
        sys.exit(f"[git-server] ERROR: set {name} or {name}_FILE")
    return value


@dataclass(frozen=True)
class Account:
    user: str
    password: str
    may_push: bool


@dataclass(frozen=True)
class Settings:
    root: Path
    port: int
    accounts: tuple[Account, ...]

    def authenticate(self, header: str | None) -> Account | None:
        if not header or not header.startswith("Basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        found = None
        for account in self.accounts:  # compare with every account: timing does not reveal which exists
            user_ok = hmac.compare_digest(user.encode(), account.user.encode())
            password_ok = hmac.compare_digest(password.encode(), account.password.encode())
            if user_ok and password_ok:
                found = account
        return found


def load_settings() -> Settings:
    port = setting("GIT_SERVER_PORT", "8080")
    if not port.isdigit() or not 0 < int(port) < 65536:
        sys.exit(f"[git-server] ERROR: GIT_SERVER_PORT must be a port number, not {port!r}")
    reader = Account(setting("GIT_READER_USER"), setting("GIT_READER_PASSWORD"), may_push=False)
    writer = Account(setting("GIT_WRITER_USER"), setting("GIT_WRITER_PASSWORD"), may_push=True)
    if reader.user == writer.user:
        sys.exit("[git-server] ERROR: GIT_READER_USER and GIT_WRITER_USER must differ")
    return Settings(Path(setting("GIT_PROJECT_ROOT", "/srv/git")), int(port), (reader, writer))


def git(*args: str, cwd: Path, stdin: str | None = None) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "git-server",
        "GIT_AUTHOR_EMAIL": "git-server@localhost",
        "GIT_COMMITTER_NAME": "git-server",
        "GIT_COMMITTER_EMAIL": "git-server@localhost",
    }
    result = subprocess.run(
        ["git", *args], cwd=cwd, input=stdin, capture_output=True, text=True, check=True, env=env
    )
    return result.stdout.strip()


def create_repository(root: Path, name: str, branch: str) -> None:
    """A bare repository whose `branch` holds one commit (plumbing only: no working tree needed)."""
    if not REPOSITORY_NAME.match(name):
        sys.exit(f"[git-server] ERROR: GIT_REPOSITORIES: {name!r} is not a repository name ([A-Za-z0-9._-])")
    path = root / f"{name}.git"
    if (path / "HEAD").exists():
        log(f"repository {name}.git exists, kept")
        return
    path.mkdir(parents=True)
    git("init", "--quiet", "--bare", f"--initial-branch={branch}", cwd=path)
    git("config", "http.receivepack", "true", cwd=path)
    blob = git("hash-object", "-w", "--stdin", cwd=path, stdin=f"# {name}\n\nDAGs go here.\n")
    tree = git("mktree", cwd=path, stdin=f"100644 blob {blob}\tREADME.md\n")
    commit = git("commit-tree", tree, "-m", "Initial commit", cwd=path)
    git("update-ref", f"refs/heads/{branch}", commit, cwd=path)
    log(f"repository {name}.git created (branch {branch} at {commit[:12]})")


def read_body(handler: BaseHTTPRequestHandler, sink: BinaryIO) -> None:
    """Copies the request body (Content-Length or chunked, as git sends large pushes) into sink."""
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                handler.rfile.readline()  # the empty line after the last chunk
                break
            copy_exactly(handler.rfile, sink, size, "request body ended inside a chunk")
            handler.rfile.readline()  # CRLF after each chunk
    else:
        size = int(handler.headers.get("Content-Length") or 0)
        copy_exactly(handler.rfile, sink, size, "request body shorter than its Content-Length")


def copy_exactly(source: BinaryIO, sink: BinaryIO, size: int, short_error: str) -> None:
    """Copies `size` bytes in CHUNK pieces; a source that ends earlier is a broken request."""
    remaining = size
    while remaining:
        data = source.read(min(CHUNK, remaining))
        if not data:
            raise ConnectionError(short_error)
        sink.write(data)
        remaining -= len(data)


class GitHandler(BaseHTTPRequestHandler):
    settings: Settings
    server_version = "airflow-platform-git-server"

    def log_message(self, format: str, *args: object) -> None:
        log(f"{self.client_address[0]} {format % args}")

    def do_GET(self) -> None:
        if urlsplit(self.path).path == "/healthz":
            self._reply(HTTPStatus.OK, b"ok\n")
            return
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _reply(self, status: HTTPStatus, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in {"Content-Type": "text/plain", **(headers or {})}.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _serve(self) -> None:
        url = urlsplit(self.path)
        path = unquote(url.path)
        if ".." in path.split("/"):
            self._reply(HTTPStatus.BAD_REQUEST, b"invalid path\n")
            return
        account = self.settings.authenticate(self.headers.get("Authorization"))
        if account is None:
            self._reply(
                HTTPStatus.UNAUTHORIZED,
                b"authentication required\n",
                {"WWW-Authenticate": 'Basic realm="git"'},
            )
            return
        pushing = path.endswith(f"/{PUSH_SERVICE}") or f"service={PUSH_SERVICE}" in url.query
        if pushing and not account.may_push:
            self._reply(HTTPStatus.FORBIDDEN, f"{account.user} may not push (read-only account)\n".encode())
            return
        self._run_backend(path, url.query, account)

    def _cgi_env(self, path: str, query: str, account: Account) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.settings.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "REMOTE_USER": account.user,
            "REMOTE_ADDR": self.client_address[0],
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
        }
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        if self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        return env

    def _run_backend(self, path: str, query: str, account: Account) -> None:
        backend = subprocess.Popen(
            ["git", "http-backend"],
            env=self._cgi_env(path, query, account),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert backend.stdin and backend.stdout and backend.stderr

        def feed() -> None:  # a thread: the backend may answer before it read everything
            try:
                read_body(self, backend.stdin)  # type: ignore[arg-type]
            except (ConnectionError, OSError, ValueError) as error:
                log(f"request body: {error}")
            finally:
                backend.stdin.close()  # type: ignore[union-attr]

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        status, headers = HTTPStatus.OK, []
        for raw in iter(backend.stdout.readline, b""):
            line = raw.decode("latin-1").rstrip("\r\n")
            if not line:
                break
            key, _, value = line.partition(":")
            if key.lower() == "status":
                status = HTTPStatus(int(value.split()[0]))
            else:
                headers.append((key, value.strip()))
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.end_headers()
        shutil.copyfileobj(backend.stdout, self.wfile, CHUNK)
        feeder.join()
        errors = backend.stderr.read().decode(errors="replace").strip()
        if backend.wait() != 0 or errors:
            log(f"git http-backend {self.command} {path} (exit {backend.returncode}): {errors}")


def main() -> None:
    settings = load_settings()
    branch = setting("GIT_DEFAULT_BRANCH", "main")
    settings.root.mkdir(parents=True, exist_ok=True)
    for name in os.environ.get("GIT_REPOSITORIES", "").split():
        create_repository(settings.root, name, branch)
    GitHandler.settings = settings
    server = ThreadingHTTPServer(("", settings.port), GitHandler)
    log(f"serving {settings.root} on port {settings.port} (reader and writer accounts)")
    server.serve_forever()


if __name__ == "__main__":
    main()
