"""The local API of a running daemon under abuse: bodies before the token, slow and bad queries."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from node.api_server import MAX_BODY
from tests.network.launcher import Node, launch, make_records, wait_for

SLOW_SQL = "SELECT sum(hash(i)) FROM range(10000000000000) t(i)"     # hours: only ever stopped


def _raw_post(node: Node, path: str, headers: dict[str, str], body: bytes) -> socket.socket:
    """Open a connection and send a request head plus `body` (maybe less than announced)."""
    port = int(node.url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    sock.sendall(head.encode() + body)
    return sock


def _answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_a_big_body_is_refused_before_it_is_read(tmp_path: Path, network: str) -> None:
    node = launch(tmp_path / "a", network)
    # 8 KiB of the 32 MiB announced: the answer comes, and the connection closes, while the rest
    # is unsent. (Leave nothing unread on the server's side: closing a socket with unread input
    # sends a reset, which may drop the answer before the client reads it.)
    part = b"\0" * 8192
    for headers, status in [({"Authorization": "Bearer wrong"}, b"401"),
                            ({}, b"401"),
                            ({"Authorization": f"Bearer {node.token}"}, b"413")]:
        length = MAX_BODY if status == b"401" else MAX_BODY + 1
        sock = _raw_post(node, "/ingest", {**headers, "Content-Length": str(length)}, part)
        with sock:
            answer = _answer(sock)         # answered and closed while the body is unsent
        assert answer.split(b"\r\n", 1)[0].split()[1] == status, answer[:200]
    assert node.status()["records"] == 1                # only its own node record
    # The dashboard is mounted into the node's local app: read-only pages without the token.
    overview = json.loads(urllib.request.urlopen(node.url + "/json/overview", timeout=20).read())
    assert overview["node"]["peer_id"] == node.status()["peer_id"]
    assert [p["name"] for p in overview["peers"]] and overview["track"] is None
    # It concludes with the node's home: its own key is a trust root there.
    trust = json.loads(urllib.request.urlopen(node.url + "/json/trust", timeout=20).read())
    assert trust["own"] == overview["node"]["peer_id"]
    assert [a["status"] for a in trust["authors"] if a["author"] == trust["own"]] == ["root"]
    with pytest.raises(urllib.error.HTTPError) as no_token:
        urllib.request.urlopen(node.url + "/status", timeout=20)
    assert no_token.value.code == 401
    with pytest.raises(urllib.error.HTTPError) as foreign_host:
        _foreign_host(node)               # a DNS-rebinding page names its own host
    assert foreign_host.value.code == 400
    _status_reads_as_words(node)


def _status_reads_as_words(node: Node) -> None:
    """`swarm status` of a live node: its fields in words ("up for 9 s", not "uptime_s 8.9000"),
    each group one row per entry, at 80 columns."""
    shown = subprocess.run([sys.executable, "-m", "swarm.cli", "status", "--home", str(node.home)],
                           capture_output=True, text=True, timeout=120,
                           env={**os.environ, "COLUMNS": "80"}, check=True).stdout
    for words in ("up for", "peers connected", "records", "rejected: invalid_from_peers",
                  "reads: "):
        assert words in shown, shown
    table = shown[shown.index("node status"):]       # above it: the id and addresses, whole
    assert "uptime_s" not in shown and "{" not in table and max(map(len, table.splitlines())) <= 80


def _foreign_host(node: Node) -> Any:
    request = urllib.request.Request(node.url + "/status", headers={
        "Host": "evil.example:80", "Authorization": f"Bearer {node.token}"})
    return urllib.request.urlopen(request, timeout=20)


def _reads(node: Node) -> dict[str, int]:
    return node.status()["reads"]


def _error(exc: urllib.error.HTTPError) -> str:
    return json.loads(exc.read())["error"]


def test_slow_bad_and_timed_out_queries(tmp_path: Path, network: str) -> None:
    node = launch(tmp_path / "a", network, extra=["--query-timeout", "1"])
    body = json.dumps({"sql": SLOW_SQL, "timeout_s": 600}).encode()
    slow = _raw_post(node, "/query", {"Authorization": f"Bearer {node.token}",
                                      "Content-Length": str(len(body))}, body)
    wait_for(lambda: _reads(node)["running"] == 1, 120, "the slow query to start")
    # While it runs: status, a one-record ingest and another query are answered.
    assert node.ingest(make_records(1))["accepted"] == 1
    assert node.query("SELECT count(*) FROM records")["rows"] == [[2]]
    assert _reads(node)["running"] == 1 and _reads(node)["done"] >= 1
    with pytest.raises(urllib.error.HTTPError) as bad:
        node.query("SELECT nope FROM records")
    assert bad.value.code == 400
    assert _error(bad.value).startswith('Binder Error: Referenced column "nope" not found')
    with pytest.raises(urllib.error.HTTPError) as timed_out:
        node.query(SLOW_SQL)                            # the node's --query-timeout: 1 s
    assert timed_out.value.code == 400 and "time limit 1 s" in _error(timed_out.value)
    assert _reads(node)["running"] == 1                  # the slow one goes on
    slow.close()                                         # its client goes away: it is stopped
    wait_for(lambda: _reads(node) == {**_reads(node), "running": 0, "cancelled": 1}, 120,
             "the abandoned query to be cancelled")
    assert _reads(node)["timed_out"] == 1
    log = (node.home / "node.log").read_text()
    assert "Traceback" not in log and "Binder" not in log


def test_swarm_sql_reports_duckdb_errors_and_its_time_limit(tmp_path: Path, network: str) -> None:
    node = launch(tmp_path / "a", network)
    cli = [sys.executable, "-c", "from swarm.cli import main; main()", "sql", "--home",
           str(node.home)]
    bad = subprocess.run([*cli, "SELECT nope FROM records"], capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode == 1 and "SQL error: Binder Error" in bad.stderr
    slow = subprocess.run([*cli, SLOW_SQL, "--query-timeout", "0.5"], capture_output=True,
                          text=True, timeout=60)
    assert slow.returncode == 1 and "time limit 0.5 s" in slow.stderr
    assert "Traceback" not in bad.stderr + slow.stderr


def test_an_ingest_with_counts_past_bigint_keeps_its_good_records(tmp_path: Path,
                                                                   network: str) -> None:
    # A signed run whose `tokens` no BIGINT holds made the whole ingest raise: /ingest answered
    # 500 and stored nothing of the batch (the same raise stopped the node's gossip ingest).
    from memory import synthetic
    from tests.helpers import bodies, envelope, sign_raw

    node = launch(tmp_path / "a", network)
    (key,) = synthetic.keypairs(1, seed=63)
    run = bodies()["run"].model_dump(mode="python")
    bad = sign_raw(key, envelope(key, "run", 1, {**run, "metrics": {**run["metrics"],
                                                                      "tokens": 2**63}}))
    good = make_records(3)
    assert node.ingest([good[0], bad, *good[1:]]) == {"accepted": 3, "duplicate": 0,
                                                      "rejected": {"schema": 1}}
    assert node.status()["records"] == 4                # its own node record and the good three
