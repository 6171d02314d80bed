"""The daemon as a process: clean shutdown, one daemon per home, the local API while it runs."""
from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import urllib.error
from pathlib import Path

import msgpack
import pytest

from tests.network.launcher import launch, make_records, wait_for

CLI = [sys.executable, "-c", "from swarm.cli import main; main()"]


def _cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args, "--home", str(home)], capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signal_shuts_down_cleanly_and_keeps_records(tmp_path: Path, network: str, sig: int) -> None:
    """SIGHUP (a closed terminal) killed the node mid-batch before it was handled as SIGTERM is."""
    if sig == signal.SIGHUP and signal.getsignal(signal.SIGHUP) is signal.SIG_IGN:
        pytest.skip("SIGHUP is ignored here (nohup): the node inherits that and keeps it")
    node = launch(tmp_path / "a", network)
    raws = make_records(20)
    node.ingest(raws)
    assert node.stop(sig) == 0
    assert not (node.home / "api.json").exists()
    log = (node.home / "node.log").read_text()
    assert "node stopped" in log and "Traceback" not in log
    again = launch(node.home, network)                  # committed records survived the restart
    assert again.status()["records"] >= 21              # 20 + its own node record


def test_second_daemon_on_one_home_is_refused(tmp_path: Path, network: str) -> None:
    node = launch(tmp_path / "a", network)
    second = subprocess.run([*CLI, "join", "--home", str(node.home), "--no-mdns",
                             "--listen", "/ip4/127.0.0.1/tcp/0", "--network", network],
                            capture_output=True, text=True, timeout=60)
    assert second.returncode == 1
    assert "already running" in second.stderr and str(os.getpid()) not in second.stderr
    assert node.status()["peer_id"]                     # the first one is unaffected


def test_browsing_through_the_local_api(tmp_path: Path, network: str) -> None:
    node = launch(tmp_path / "a", network)
    token_mode = stat.S_IMODE((node.home / "api.token").stat().st_mode)
    assert token_mode == 0o600
    node.ingest(make_records(5))
    reply = node.query("SELECT kind, count(*) AS n FROM records GROUP BY kind ORDER BY kind")
    assert reply["columns"] == ["kind", "n"] and ["hypothesis", 5] in reply["rows"]
    with pytest.raises(urllib.error.HTTPError) as bad_sql:
        node.query("DELETE FROM records")
    assert bad_sql.value.code == 400 and "error" in json.loads(bad_sql.value.read())
    with pytest.raises(urllib.error.HTTPError) as no_token:
        node.request("/status", token="wrong")
    assert no_token.value.code == 401
    with pytest.raises(urllib.error.HTTPError) as garbage:
        node.request("/ingest", b"\xc1 not msgpack")
    assert garbage.value.code == 400
    invalid = make_records(1)[0][:-3] + b"abc"          # broken signature bytes
    assert node.request("/ingest", msgpack.packb([invalid]))["accepted"] == 0
    status = _cli("status", "--json", home=node.home)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["records"] == 6    # 5 + the node record; nothing invalid
    peers = _cli("peers", "--json", home=node.home)
    assert peers.returncode == 0 and json.loads(peers.stdout) == []


def test_status_and_stats_json_have_the_same_keys_running_or_not(tmp_path: Path,
                                                                  network: str) -> None:
    """Through a running node `status --json` had no `running` or `home` (`.running` read null)
    and `memory stats --json` no `file_bytes`: a script saw other keys whether a node ran."""
    node = launch(tmp_path / "a", network)
    live = json.loads(_cli("status", "--json", home=node.home).stdout)
    live_stats = json.loads(_cli("memory", "stats", "--json", home=node.home).stdout)
    assert node.stop(signal.SIGTERM) == 0
    stopped = json.loads(_cli("status", "--json", home=node.home).stdout)
    stopped_stats = json.loads(_cli("memory", "stats", "--json", home=node.home).stdout)
    assert (live["running"], stopped["running"]) == (True, False)
    assert live["home"] == stopped["home"] == str(node.home) and live["peer_id"] == stopped["peer_id"]
    assert sorted(live_stats) == sorted(stopped_stats) and live_stats["file_bytes"] > 0


def test_api_serves_concurrent_reads_while_gossip_ingests(tmp_path: Path, network: str) -> None:
    node = launch(tmp_path / "a", network)
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            for _ in range(20):
                node.query("SELECT count(*) FROM records")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for thread in threads:
        thread.start()
    for i in range(10):
        node.ingest(make_records(20))
    for thread in threads:
        thread.join(60)
    assert not errors
    wait_for(lambda: node.status()["records"] == 201, 120, "all records stored")


def test_concurrent_publishes_through_the_node_never_reuse_a_seq(tmp_path: Path, network: str) -> None:
    from node.api_client import connect
    from tests.helpers import bodies

    node = launch(tmp_path / "a", network)
    client = connect(node.home)
    assert client is not None
    body = bodies()["hypothesis"].model_dump(mode="json")
    ids: list[str] = []
    errors: list[BaseException] = []

    def publish(i: int) -> None:
        try:
            ids.append(client.publish("hypothesis", {**body, "rationale": f"idea {i}"}))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=publish, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors and len(set(ids)) == 12
    seqs = node.query("SELECT seq FROM records WHERE author = (SELECT author FROM nodes LIMIT 1) "
                      "ORDER BY seq")["rows"]
    assert [s for (s,) in seqs] == list(range(1, 14))          # the node record, then 12 more
    assert node.query("SELECT count(*) FROM flagged_authors")["rows"] == [[0]]
    with pytest.raises(Exception, match="invalid hypothesis body"):
        client.publish("hypothesis", {**body, "source": "oracle"})
    with pytest.raises(Exception, match="expected"):
        client.publish("gossip", body)


def test_second_join_on_a_running_home_names_the_node_not_its_port(tmp_path: Path,
                                                                   network: str) -> None:
    """`swarm join` typed twice on one machine with the defaults (both on TCP 7400) was told
    that the port is in use, "another node?": the node on its home, with its pid, is the answer."""
    node = launch(tmp_path / "a", network)
    listening = node.status()["addrs"][0].split("/p2p/")[0]        # the first node's own port
    second = subprocess.run([*CLI, "join", "--home", str(node.home), "--no-mdns",
                             "--listen", listening, "--network", network],
                            capture_output=True, text=True, timeout=60)
    assert second.returncode == 1
    assert f"(pid {node.proc.pid}) is already running" in second.stderr, second.stderr
    assert "in use" not in second.stderr
