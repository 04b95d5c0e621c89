"""Connections to the two servers (clickhouse-driver, native protocol) with one-line error mapping."""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from clickhouse_driver import Client
from clickhouse_driver import errors as driver_errors

from .cancellation import TRACKER
from .ddl import ServerFeatures
from .errors import ExitCode, MigrationError, first_line
from .failure import note_server

# clickhouse-driver logs every failed connect attempt with a traceback: our errors say it in one line.
logging.getLogger("clickhouse_driver").setLevel(logging.CRITICAL)

_AUTH_ERROR_CODES = {192, 193, 194, 516}  # UNKNOWN_USER, WRONG_PASSWORD, REQUIRED_PASSWORD, AUTH_FAILED
_UNKNOWN_DATABASE = 81
_READ_PREFIXES = ("SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS")
_PUSH_PREFIX = "INSERT INTO FUNCTION REMOTE"
# Two servers started within this many seconds of each other, on the same host name and version, are
# told apart by the query-visibility probe (see same_server).
START_TIME_TOLERANCE_SECONDS = 2
PROBE_SECONDS = 2
CONNECT_TIMEOUT_SECONDS = 10
# A copy of a big table is one long query: the server sends progress packets, so this only needs to
# cover the gaps between packets.
RECEIVE_TIMEOUT_SECONDS = 3600


@dataclass(frozen=True)
class Endpoint:
    role: str  # "source" or "destination"
    host: str
    port: int
    user: str
    password: str = field(repr=False)
    database: str
    secure: bool = False
    verify: bool = False

    @property
    def address(self) -> str:
        """host:port as remote() reads it (an IPv6 address in brackets: its colons are not the port's)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class Identity:
    """What a server says about itself (not how we addressed it)."""

    host_name: str
    version: str
    started: int  # now() - uptime(), seconds since the epoch, by the server's clock
    data_path: str  # where the server keeps the `system` database: one server per path on a host

    def may_be(self, other: Identity) -> bool:
        return (
            self.host_name == other.host_name
            and self.version == other.version
            and abs(self.started - other.started) <= START_TIME_TOLERANCE_SECONDS
            and self.data_path == other.data_path
        )


Query = Callable[[str], Sequence[Sequence[Any]]]


def read_identity(query: Query, system_table: Callable[[str], str]) -> Identity:
    """What the server behind `query` says about itself; `system_table` names its system tables (the
    server's own, or another server's reached through remote())."""
    rows = query(f"SELECT hostName(), version(), toUInt32(now()) - uptime() FROM {system_table('one')}")
    host_name, version, started = rows[0]
    try:
        paths = query(f"SELECT data_path FROM {system_table('databases')} WHERE name = 'system'")
    except driver_errors.ServerException:  # not visible to this user: the probe decides
        paths = []
    return Identity(
        host_name=host_name, version=version, started=int(started), data_path=paths[0][0] if paths else ""
    )


class Observed(Protocol):
    """A server as seen through some connection: what it reports, and the queries it is running."""

    def identity(self) -> Identity: ...

    def has_running(self, query_id: str) -> bool: ...


class Server:
    """One server. The source is read-only by construction: it only runs reads and pushes to remote().

    The session database is the one being read or written (a user restricted to that database must be
    able to work); a destination database that does not exist yet falls back to the user's default.
    """

    def __init__(self, endpoint: Endpoint, *, writable: bool) -> None:
        self.endpoint = endpoint
        self.writable = writable
        self.session_database = endpoint.database
        self._client = self.new_client()
        self.features = ServerFeatures(version="0", settings=frozenset())
        TRACKER.register(endpoint.role, self.new_client)

    def new_client(self, database: str | None = None) -> Client:
        endpoint = self.endpoint
        return Client(
            endpoint.host,
            port=endpoint.port,
            user=endpoint.user,
            password=endpoint.password,
            database=self.session_database if database is None else database,
            secure=endpoint.secure,
            verify=endpoint.verify,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            send_receive_timeout=RECEIVE_TIMEOUT_SECONDS,
            sync_request_timeout=CONNECT_TIMEOUT_SECONDS,
            client_name="clickhouse-migrate",
        )

    def connect(self) -> None:
        """Open the connection and detect features; raise MigrationError (exit 3/4/5) on failure."""
        try:
            version = self.query("SELECT version()")[0][0]
        except driver_errors.ServerException as error:
            if error.code != _UNKNOWN_DATABASE:
                raise
            if not self.writable:
                raise MigrationError(
                    ExitCode.SOURCE_DATABASE_MISSING,
                    f"source database '{self.endpoint.database}' does not exist on {self.endpoint.address}",
                ) from error
            self._client.disconnect()
            self.session_database = ""  # the user's default database, until ours is created
            self._client = self.new_client()
            version = self.query("SELECT version()")[0][0]
        settings = self.query("SELECT name FROM system.settings")
        functions = self.query("SELECT name FROM system.table_functions")
        self.features = ServerFeatures(
            version=version,
            settings=frozenset(row[0] for row in settings),
            table_functions=frozenset(row[0] for row in functions),
        )

    def query(self, sql: str, params: dict[str, Any] | None = None) -> Sequence[Sequence[Any]]:
        return self.run(self._client, sql, params)

    def identity(self) -> Identity:
        return read_identity(self.query, lambda table: f"system.{table}")

    def has_running(self, query_id: str) -> bool:
        rows = self.query("SELECT count() FROM system.processes WHERE query_id = %(id)s", {"id": query_id})
        return bool(rows[0][0])

    def run(
        self,
        client: Client,
        sql: str,
        params: dict[str, Any] | None = None,
        settings: dict[str, Any] | None = None,
        query_id: str | None = None,
    ) -> Sequence[Sequence[Any]]:
        """Execute on `client` (this server), mapping connection failures to one-line errors."""
        self._check_allowed(sql)
        try:
            return client.execute(
                sql, params, settings=settings, query_id=query_id or TRACKER.next_query_id()
            )
        except (driver_errors.NetworkError, driver_errors.SocketTimeoutError, OSError, ssl.SSLError) as error:
            raise self._unreachable(error) from error
        except Exception as error:  # a server's error, or e.g. a connection closed mid-answer (EOFError)
            if isinstance(error, driver_errors.ServerException) and error.code in _AUTH_ERROR_CODES:
                raise MigrationError(
                    ExitCode.AUTHENTICATION,
                    f"authentication failed for user '{self.endpoint.user}' on {self.endpoint.role} "
                    f"{self.endpoint.address}: {first_line(error)}",
                ) from error
            note_server(error, f"{self.endpoint.role} {self.endpoint.address}")
            raise

    def progress_run(self, client: Client, sql: str, settings: dict[str, Any]) -> Iterator[tuple[int, int]]:
        """Execute `sql`, yielding (rows, total_rows) as the server reports progress."""
        self._check_allowed(sql)
        try:
            result = client.execute_with_progress(sql, settings=settings, query_id=TRACKER.next_query_id())
            yield from result
            result.get_result()
        except (driver_errors.NetworkError, driver_errors.SocketTimeoutError, OSError) as error:
            raise self._unreachable(error) from error
        except Exception as error:
            note_server(error, f"{self.endpoint.role} {self.endpoint.address}")
            raise

    def _unreachable(self, error: BaseException) -> MigrationError:
        if isinstance(error, socket.gaierror):
            reason = f"cannot resolve host ({error.strerror})"
        else:
            reason = first_line(error)
        return MigrationError(
            ExitCode.UNREACHABLE, f"cannot reach {self.endpoint.role} {self.endpoint.address}: {reason}"
        )

    def _check_allowed(self, sql: str) -> None:
        """Guard against ever writing to the source, whatever a future change does."""
        if self.writable:
            return
        head = " ".join(sql.split()[:4]).upper()
        if not (head.startswith(_READ_PREFIXES) or head.startswith(_PUSH_PREFIX)):
            raise MigrationError(ExitCode.UNEXPECTED, f"refusing to run a write on the source: {head} ...")

    def database_exists(self, name: str) -> bool:
        return bool(
            self.query("SELECT count() FROM system.databases WHERE name = %(db)s", {"db": name})[0][0]
        )

    def close(self) -> None:
        self._client.disconnect()


def same_server(source: Server, destination: Observed) -> bool:
    """Whether the two connections reach one server, by what the servers report, not by address.

    Different host names, versions, start times or data paths prove two servers. When they agree (a user
    who cannot see the data path, containers with equal paths and host names), a probe decides: a query
    left running on the source under a unique query_id is looked for in the destination's processes.
    """
    if not source.identity().may_be(destination.identity()):
        return False
    probe_id = TRACKER.next_query_id()
    probe = threading.Thread(
        target=source.run,
        args=(source.new_client(), f"SELECT sleep({PROBE_SECONDS})", None, None, probe_id),
        daemon=True,
    )
    probe.start()
    try:
        deadline = time.monotonic() + PROBE_SECONDS
        while not source.has_running(probe_id):
            if time.monotonic() > deadline or not probe.is_alive():
                return True  # could not tell them apart: refusing is the safe answer
            time.sleep(0.05)
        return destination.has_running(probe_id)
    finally:
        probe.join()
