"""A node stopped under load: requests in flight (queries that never end on their own, dashboard
pages and live event streams, imports) when SIGTERM arrives. It must exit 0, log no traceback, answer what was in flight
with 503, and keep every record whose import it acknowledged."""
from __future__ import annotations

import json
import signal
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import msgpack

from memory import codec
from memory.store import ReadOnlyMemory
from node.home import memory_path
from swarm.bench import memory_gen
from tests.network.launcher import Node, launch, make_records, wait_for

ENDLESS = "SELECT sum(hash(i)) FROM range(10000000000000) t(i)"    # runs until stopped
PAGES = ["/json/leaderboard", "/json/runs", "/json/overview", "/status"]


def _call(node: Node, path: str, body: dict[str, Any] | bytes | None = None) -> tuple[int, bytes]:
    """(status, body) of one request; (0, b"") when the node no longer answers."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    request = urllib.request.Request(node.url + path, data=data,
                                     headers={"Authorization": f"Bearer {node.token}"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def test_sigterm_under_load_exits_cleanly_and_answers_what_was_in_flight(
        tmp_path: Path, network: str) -> None:
    """uvicorn cancelled the requests still running 2 s into its stop and logged each with a
    traceback ("Exception in ASGI application", answered 500), the cancelled query's end was
    logged as "Future exception was never retrieved", and an event stream ended so was logged as
    "ASGI callable returned without completing response"."""
    home = tmp_path / "a"
    home.mkdir()
    memory_gen.build(memory_path(home), 2000, authors=5)
    node = launch(home, network)
    held = node.query("SELECT count(*) FROM records")["rows"][0][0]
    stop = threading.Event()
    endless: list[tuple[int, bytes]] = []
    acknowledged: list[str] = []

    def query_forever() -> None:
        endless.append(_call(node, "/query", {"sql": ENDLESS, "timeout_s": 3600}))

    def browse_and_import(i: int) -> None:
        while not stop.is_set():
            _call(node, PAGES[i % len(PAGES)])
            raws = make_records(2)
            status, body = _call(node, "/ingest", msgpack.packb(raws, use_bin_type=True))
            if status == 200 and json.loads(body)["accepted"] == 2:
                acknowledged.extend(codec.decode(raw).id for raw in raws)

    def follow_events() -> None:                 # a dashboard tab left open: never ends by itself
        request = urllib.request.Request(node.url + "/events")
        with urllib.request.urlopen(request, timeout=120) as response:
            streamed.append(response.read())     # to the end the stop gives it

    streamed: list[bytes] = []
    threads = [threading.Thread(target=query_forever, daemon=True) for _ in range(3)]
    threads += [threading.Thread(target=follow_events, daemon=True) for _ in range(2)]
    threads += [threading.Thread(target=browse_and_import, args=(i,), daemon=True)
                for i in range(6)]
    for thread in threads:
        thread.start()
    wait_for(lambda: node.status()["reads"]["running"] >= 3, 120, "the endless queries to run")
    wait_for(lambda: acknowledged, 120, "an import to be stored")
    assert node.stop(signal.SIGTERM) == 0
    stop.set()
    for thread in threads:
        thread.join(150)
    assert not any(thread.is_alive() for thread in threads)
    log = (home / "node.log").read_text(errors="replace")
    assert "node stopped" in log
    # uvicorn's own lines start "ERROR:"; asyncio's (a future never retrieved) "... ERROR asyncio"
    errors = [line for line in log.splitlines()
              if line.startswith("ERROR:") or " ERROR asyncio" in line]
    assert "Traceback" not in log and errors == [], log[-3000:]
    assert len(endless) == 3 and len(streamed) == 2
    assert all(b"event: records" in events for events in streamed)
    for status, body in endless:
        assert status == 503 and json.loads(body) == {"error": "the node is stopping"}
    memory = ReadOnlyMemory(memory_path(home))
    try:
        found = memory.query("SELECT id FROM records WHERE id IN (SELECT unnest(?))",
                             [acknowledged]).rows
        assert {row[0] for row in found} == set(acknowledged)
        assert memory.query("SELECT count(*) FROM records").rows[0][0] >= held + len(acknowledged)
    finally:
        memory.close()

