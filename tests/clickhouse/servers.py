"""Real ClickHouse server processes for tests and benches (Debian clickhouse-server, e.g. 18.16).

Each server runs as the current user with its own temp directory, XML config (`<yandex>` root, as 18.16
expects), loopback-only listeners on free ports, no interserver port, and two users: `default` without a
password and `migrator` with one (for authentication tests and password plumbing). 18.16 runs as root
without extra flags (checked); the destination can also listen with TLS (self-signed, `openssl`).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from clickhouse_driver import Client
from clickhouse_driver.errors import Error as DriverError

SERVER_BINARY_CANDIDATES = ("clickhouse-server", "/usr/bin/clickhouse-server", "/usr/sbin/clickhouse-server")
MIGRATOR_USER = "migrator"
MIGRATOR_PASSWORD = "s3cr'et pass"  # a quote and a space: exercises literal escaping in remote()
# A user restricted to a few databases (least privilege): it may not use `default`.
LIMITED_USER = "limited"
LIMITED_PASSWORD = "limited-pass"
LIMITED_DATABASES = (
    "limited_src",
    "limited_dst",
    "limited_dst__migrate_staging",
    "limited_dst__migrate_previous",
)
# Every server also listens on this second loopback address: another spelling of the same server.
ALIAS_ADDRESS = "127.0.0.2"
STARTUP_TIMEOUT_SECONDS = 60
logging.getLogger("clickhouse_driver").setLevel(logging.CRITICAL)  # startup polling fails by design

CONFIG_TEMPLATE = """<?xml version="1.0"?>
<yandex>
  <logger>
    <level>warning</level>
    <log>{root}/log/server.log</log>
    <errorlog>{root}/log/server.err.log</errorlog>
    <size>10M</size>
    <count>1</count>
  </logger>
  <listen_host>127.0.0.1</listen_host>
  <listen_host>{alias_address}</listen_host>
  <tcp_port>{tcp_port}</tcp_port>
{tls}  <http_port>{http_port}</http_port>
  <path>{root}/data/</path>
  <tmp_path>{root}/tmp/</tmp_path>
  <user_files_path>{root}/user_files/</user_files_path>
  <format_schema_path>{root}/format_schemas/</format_schema_path>
  <mark_cache_size>268435456</mark_cache_size>
  <uncompressed_cache_size>268435456</uncompressed_cache_size>
  <users_config>{root}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <max_concurrent_queries>100</max_concurrent_queries>
</yandex>
"""

# Native TLS port with a self-signed certificate; as a client (remoteSecure) the server accepts any cert.
TLS_TEMPLATE = """  <tcp_port_secure>{secure_port}</tcp_port_secure>
  <openSSL>
    <server>
      <certificateFile>{root}/server.crt</certificateFile>
      <privateKeyFile>{root}/server.key</privateKeyFile>
      <verificationMode>none</verificationMode>
      <disableProtocols>sslv2,sslv3</disableProtocols>
    </server>
    <client>
      <verificationMode>none</verificationMode>
      <invalidCertificateHandler><name>AcceptCertificateHandler</name></invalidCertificateHandler>
    </client>
  </openSSL>
"""

USERS_TEMPLATE = """<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>4000000000</max_memory_usage></default></profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>127.0.0.0/8</ip><ip>::1</ip><ip>::ffff:127.0.0.0/104</ip></networks>
      <profile>default</profile><quota>default</quota>
    </default>
    <{user}>
      <password>{password}</password>
      <networks><ip>127.0.0.0/8</ip><ip>::1</ip><ip>::ffff:127.0.0.0/104</ip></networks>
      <profile>default</profile><quota>default</quota>
    </{user}>
    <{limited_user}>
      <password>{limited_password}</password>
      <networks><ip>127.0.0.0/8</ip><ip>::1</ip><ip>::ffff:127.0.0.0/104</ip></networks>
      <profile>default</profile><quota>default</quota>
      <allow_databases>{limited_databases}</allow_databases>
    </{limited_user}>
  </users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
    <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time>
  </interval></default></quotas>
</yandex>
"""


@dataclass(frozen=True)
class ServerInfo:
    """Where a started server listens and how to log in."""

    name: str
    host: str
    port: int
    http_port: int
    root: Path
    secure_port: int | None = None  # native TLS port (self-signed certificate), when started with tls=True

    def client(self, user: str = "default", password: str = "", **kwargs: object) -> Client:
        kwargs.setdefault("send_receive_timeout", 60)  # a stuck test query fails instead of hanging
        return Client(self.host, port=self.port, user=user, password=password, **kwargs)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_binary() -> str:
    for candidate in SERVER_BINARY_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    raise RuntimeError("clickhouse-server not found: run `make test-deps` (Debian package clickhouse-server)")


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _self_signed_certificate(root: Path) -> None:
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(root / "server.key"),
            "-out",
            str(root / "server.crt"),
        ],
        check=True,
        capture_output=True,
    )


def _write_config(info: ServerInfo) -> Path:
    root = info.root
    tls = ""
    if info.secure_port:
        _self_signed_certificate(root)
        tls = TLS_TEMPLATE.format(root=root, secure_port=info.secure_port)
    for sub in ("log", "data", "tmp", "user_files", "format_schemas"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "users.xml").write_text(
        USERS_TEMPLATE.format(
            user=MIGRATOR_USER,
            password=_xml_escape(MIGRATOR_PASSWORD),
            limited_user=LIMITED_USER,
            limited_password=LIMITED_PASSWORD,
            limited_databases="".join(f"<database>{name}</database>" for name in LIMITED_DATABASES),
        )
    )
    config = root / "config.xml"
    config.write_text(
        CONFIG_TEMPLATE.format(
            root=root, tcp_port=info.port, http_port=info.http_port, tls=tls, alias_address=ALIAS_ADDRESS
        )
    )
    return config


def _wait_ready(info: ServerInfo, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = (info.root / "log" / "server.err.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"clickhouse-server {info.name} exited with {process.returncode}:\n{log}")
        client = info.client(connect_timeout=1)
        try:
            client.execute("SELECT 1")
            return
        except (DriverError, OSError) as error:
            last_error = error
            time.sleep(0.2)
        finally:
            client.disconnect()
    raise RuntimeError(
        f"clickhouse-server {info.name} not ready after {STARTUP_TIMEOUT_SECONDS}s: {last_error}"
    )


@contextlib.contextmanager
def clickhouse_server(name: str, *, tls: bool = False) -> Iterator[ServerInfo]:
    """Start one server in a fresh temp dir; stop it and remove the dir on exit."""
    root = Path(tempfile.mkdtemp(prefix=f"clickhouse-{name}-"))
    info = ServerInfo(
        name=name,
        host="127.0.0.1",
        port=free_port(),
        http_port=free_port(),
        root=root,
        secure_port=free_port() if tls else None,
    )
    config = _write_config(info)
    started = time.monotonic()
    process = subprocess.Popen(
        [server_binary(), f"--config-file={config}"],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_ready(info, process)
        print(f"[clickhouse] {name} ready on {info.host}:{info.port} in {time.monotonic() - started:.1f}s")
        yield info
    finally:
        _stop(process)
        shutil.rmtree(root, ignore_errors=True)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@contextlib.contextmanager
def clickhouse_pair(*, destination_tls: bool = False) -> Iterator[tuple[ServerInfo, ServerInfo]]:
    """A source and a destination server, both on loopback (the destination optionally with TLS too)."""
    with (
        clickhouse_server("source") as source,
        clickhouse_server("destination", tls=destination_tls) as destination,
    ):
        yield source, destination
