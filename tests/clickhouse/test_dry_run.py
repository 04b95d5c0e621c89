"""--dry-run is the full read-only preflight: it lists what would be dropped and checks the route the
executing server takes to the other one (a route failure is exit 3, like an unreachable server)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest

from .conftest import Servers, base_args, databases, run_tool
from .split_route import pump


@contextlib.contextmanager
def single_connection_forwarder(target_port: int) -> Iterator[int]:
    """A TCP port forward to the source that admits one connection at a time (a real network fault:
    the tool's own connection gets through, the executing server's remote() connection is refused)."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    busy = threading.Lock()

    def serve(client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", target_port))
            downstream = threading.Thread(target=pump, args=(upstream, client), daemon=True)
            downstream.start()
            pump(client, upstream)
            downstream.join()
        finally:
            busy.release()

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = listener.accept()
                if busy.acquire(blocking=False):
                    threading.Thread(target=serve, args=(client,), daemon=True).start()
                else:
                    client.close()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield port
    finally:
        listener.close()


@pytest.mark.usefixtures("destination_snapshot")
@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "real-run"])
def test_route_failure_exits_3_before_writing(servers: Servers, dry_run: bool) -> None:
    with single_connection_forwarder(servers.source.port) as port:
        args = base_args(servers, "route_blocked", **{"--source-port": str(port)})
        run = run_tool([*args, "--tables", "tiny", *(["--dry-run"] if dry_run else [])])
    assert run.returncode == 3, run.stdout + run.stderr
    assert "cannot reach source" in run.stderr and "through remote()" in run.stderr
    assert "s3cr'et" not in run.stderr


def test_dry_run_lists_what_would_be_dropped(servers: Servers) -> None:
    first = run_tool([*base_args(servers, "shop_dry"), "--tables", "events", "v_daily", "tiny"])
    assert first.returncode == 0, first.stdout + first.stderr
    before = databases(servers.destination.client())
    for strategy, how in (("swap", "replaced"), ("recreate", "dropped")):
        run = run_tool([*base_args(servers, "shop_dry"), "--strategy", strategy, "--dry-run"])
        assert run.returncode == 0, run.stdout + run.stderr
        listed = sorted(line.split("object=")[1].split()[0] for line in run.lines("would_drop"))
        assert listed == ["events", "tiny", "v_daily"], run.stdout
        assert all(how in line for line in run.lines("would_drop"))
        (summary,) = run.lines("summary")
        assert summary.endswith("would_drop=3") and f"strategy={strategy}" in summary
    assert databases(servers.destination.client()) == before
