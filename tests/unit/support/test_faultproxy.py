"""The fault proxy itself: forwards, delays, black-holes and resets as the tests rely on."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.support.faultproxy import FaultNetwork


@pytest.fixture
def echo_port() -> Iterator[int]:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            threading.Thread(target=_echo, args=(conn,), daemon=True).start()

    def _echo(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(4096):
                conn.sendall(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield port
    stop.set()
    thread.join()
    server.close()


@pytest.fixture
def net() -> Iterator[FaultNetwork]:
    network = FaultNetwork()
    yield network
    network.close()


def _roundtrip(port: int, payload: bytes, timeout: float = 2.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(payload)
        received = b""
        while len(received) < len(payload):
            chunk = sock.recv(4096)
            if not chunk:
                break
            received += chunk
        return received


def test_forwards_and_adds_latency_each_way(net: FaultNetwork, echo_port: int) -> None:
    link = net.link("a->b", echo_port)
    assert _roundtrip(link.port, b"hello") == b"hello"
    net.set_latency("a->b", 0.2)
    started = time.monotonic()
    assert _roundtrip(link.port, b"slow") == b"slow"
    assert time.monotonic() - started >= 0.4  # 0.2 s there, 0.2 s back


def test_drop_partition_black_holes_then_heals(net: FaultNetwork, echo_port: int) -> None:
    link = net.link("a->b", echo_port)
    net.partition("a->b", mode="drop")
    with pytest.raises(TimeoutError):
        _roundtrip(link.port, b"lost", timeout=0.5)
    net.heal("a->b")
    assert _roundtrip(link.port, b"back") == b"back"


def test_reset_partition_refuses_connections(net: FaultNetwork, echo_port: int) -> None:
    link = net.link("a->b", echo_port)
    net.partition("a->b", mode="reset")
    with pytest.raises((ConnectionError, OSError)):
        received = _roundtrip(link.port, b"x", timeout=1)
        if not received:
            raise ConnectionResetError("closed without an answer")
