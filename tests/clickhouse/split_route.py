"""One address, two servers: a loopback TCP proxy that sends this tool's connections to one ClickHouse
server and every other client's (a server running remote()) to another.

It stands in for a host name that resolves differently for the tool than for the executing server (its
own DNS or /etc/hosts, `localhost`, a Kubernetes short Service name resolved in another namespace). The
two are told apart by the client name of the native protocol's first packet (Hello): the tool's
connections say `ClickHouse clickhouse-migrate`.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

TOOL_CLIENT_NAME = b"ClickHouse clickhouse-migrate"  # clickhouse-driver prefixes "ClickHouse "
HELLO_TIMEOUT_SECONDS = 10


def _varint(data: bytes, offset: int) -> tuple[int, int]:
    """(value, next offset) of the unsigned LEB128 number at `offset`; IndexError when incomplete."""
    value, shift = 0, 0
    while True:
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, offset
        shift += 7


def _client_name(data: bytes) -> bytes | None:
    """The client name of a Hello packet (type 0, then a length-prefixed string); None until complete."""
    try:
        _packet_type, offset = _varint(data, 0)
        length, offset = _varint(data, offset)
    except IndexError:
        return None
    name = data[offset : offset + length]
    return name if len(name) == length else None


def pump(reader: socket.socket, writer: socket.socket) -> None:
    """Copies reader to writer until either side closes, then shuts both down (one direction of a proxy)."""
    with contextlib.suppress(OSError):
        while data := reader.recv(65536):
            writer.sendall(data)
    for sock in (reader, writer):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _serve(client: socket.socket, tool_port: int, others_port: int) -> None:
    client.settimeout(HELLO_TIMEOUT_SECONDS)
    hello = b""
    with contextlib.suppress(OSError):
        while (name := _client_name(hello)) is None and (chunk := client.recv(4096)):
            hello += chunk
    name = _client_name(hello)
    if name is None:
        client.close()
        return
    client.settimeout(None)
    port = tool_port if name == TOOL_CLIENT_NAME else others_port
    upstream = socket.create_connection(("127.0.0.1", port))
    upstream.sendall(hello)
    threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
    pump(upstream, client)
    client.close()
    upstream.close()


@contextlib.contextmanager
def split_route(tool_port: int, others_port: int) -> Iterator[int]:
    """A loopback port: the tool's connections reach `tool_port`, everyone else's `others_port`."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)

    def accept() -> None:
        with contextlib.suppress(OSError):  # the listener is closed on exit
            while True:
                client, _ = listener.accept()
                threading.Thread(target=_serve, args=(client, tool_port, others_port), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        listener.close()
