"""A local process holding live event streams cannot take the dashboard's connections: past
MAX_EVENT_STREAMS a new stream ends the oldest one (docs/TRUST.md, "Serving")."""
from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx

from memory import synthetic
from memory.store import Store
from swarm.web.app import MAX_EVENT_STREAMS, dashboard_app
from tests.web.conftest import served

END_WAIT_S = 60.0           # generous: the oldest stream ends within a poll (1 s) on an idle machine


def _open_stream(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=END_WAIT_S)
    sock.sendall(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    head = b""
    while b"retry:" not in head:            # the stream is open once its first event came
        chunk = sock.recv(4096)
        assert chunk, head
        head += chunk
    return sock


def _ended(sock: socket.socket) -> bool:
    """Whether the chunked stream ends (its last chunk or EOF) before END_WAIT_S."""
    seen, deadline = b"", time.monotonic() + END_WAIT_S
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            return False
        if not chunk:
            return True
        seen += chunk
        if seen.endswith(b"0\r\n\r\n"):
            return True
    return False


def test_a_new_event_stream_ends_the_oldest_past_the_cap(tmp_path: Path) -> None:
    store = Store(tmp_path / "m.duckdb", helpers=0)
    store.add(synthetic.history()[:3])
    streams: list[socket.socket] = []
    with served(dashboard_app(store, tmp_path / "home")) as port:
        try:
            streams += [_open_stream(port) for _ in range(MAX_EVENT_STREAMS)]
            newest = _open_stream(port)
            assert _ended(streams[0])               # the oldest went, so streams stay bounded
            assert httpx.get(f"http://127.0.0.1:{port}/json/trust", timeout=30).status_code == 200
            streams.append(newest)
        finally:
            for sock in streams:                    # before the server stops: it waits on them
                sock.close()
    store.close()


def test_leaving_a_served_dashboard_stops_it_though_a_stream_is_held_open(tmp_path: Path) -> None:
    """`served` returns once the server has stopped, even while a client (a page left open) holds
    an event stream: the caller closes the memory next, which failed on a loaded machine under
    the stream's query ("connection is busy with another call"). Before, the server outlived
    `served`."""
    store = Store(tmp_path / "m.duckdb", helpers=0)
    store.add(synthetic.history()[:3])
    with served(dashboard_app(store, tmp_path / "home")) as port:
        held = _open_stream(port)
    try:
        assert _ended(held)                     # the server is gone, not streaming on
    finally:
        held.close()
    store.close()                               # no query of the stream is running
