"""Launch real node processes (`swarm join`) on free loopback ports, and talk to them.

Used by the network tests and `swarm bench network`. Modelled on hivemind's test launchers: each node
is a separate process with its own home; helpers poll for conditions with deadlines instead of
sleeping; every process started here is registered so that `kill_all` (the tests' conftest
finalizer, the benchmark's `finally`) can kill whatever is left.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

STARTED: list[subprocess.Popen[bytes]] = []
# Generous: a node imports libp2p and DuckDB before it serves, which took tens of seconds on a
# loaded 2-core machine. A wait ends once the node serves, so this costs nothing when fast.
START_TIMEOUT_S = 120.0
REQUEST_TIMEOUT_S = 60.0      # one API call of a busy node (a DuckDB query under load)
STOP_TIMEOUT_S = 60.0         # a clean shutdown: services, the batch in flight, the libp2p thread


def wait_for(condition: Callable[[], Any], timeout: float, message: str = "condition",
              interval: float = 0.1) -> Any:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {message}")
        time.sleep(interval)


@dataclass
class Node:
    """One running `swarm join` process."""

    home: Path
    proc: subprocess.Popen[bytes]
    url: str = ""
    token: str = ""

    def request(self, path: str, body: bytes | None = None, token: str | None = None) -> Any:
        """Call the node's local API; raise urllib.error.HTTPError on an error status."""
        req = urllib.request.Request(self.url + path, data=body,
                                     method="POST" if body is not None else "GET")
        req.add_header("Authorization", f"Bearer {self.token if token is None else token}")
        with urllib.request.urlopen(req, timeout=REQUEST_TIMEOUT_S) as response:
            return json.loads(response.read())

    def status(self) -> dict[str, Any]:
        """GET /status."""
        return self.request("/status")

    def query(self, sql: str, params: list[Any] | None = None) -> dict[str, Any]:
        """POST /query."""
        return self.request("/query", json.dumps({"sql": sql, "params": params or []}).encode())

    def ingest(self, raws: list[bytes]) -> dict[str, Any]:
        """POST /ingest: the node stores the records and announces the new ones."""
        return self.request("/ingest", msgpack.packb(raws, use_bin_type=True))

    def record_ids(self) -> set[str]:
        """Ids of every record this node holds."""
        return {row[0] for row in self.query("SELECT id FROM records")["rows"]}

    def has_all(self, ids: set[str]) -> bool:
        """Whether this node holds every record in `ids` (False while it is unreachable)."""
        try:
            return ids <= self.record_ids()
        except (urllib.error.URLError, OSError):
            return False

    @property
    def addr(self) -> str:
        """A dialable multiaddr of this node."""
        return self.status()["addrs"][0]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT_S) -> int:
        """Send `sig` and wait for the process to exit; return its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


# Resident memory of one node, measured (docs/RUNNING.md, "Left running for hours"): 215-224 MB
# with --no-work; a training node 440-490 MB plus its run's process, 390-435 MB.
NODE_MB = 250
TRAINING_NODE_MB = 950


def check_room(nodes: int, node_mb: int = NODE_MB) -> None:
    """Stop in one line, before any node starts, when `nodes` nodes would not fit in this
    machine's available memory: `--nodes 100000` started node after node until stopped."""
    import psutil

    from swarm.output import fail

    free_mb = psutil.virtual_memory().available // 2**20
    if nodes * node_mb > free_mb:
        fail(f"--nodes {nodes} needs about {nodes * node_mb / 1024:,.1f} GB of memory "
             f"({node_mb} MB a node); {free_mb / 1024:,.1f} GB is available here")


def launch(home: Path, network: str, bootstrap: Sequence[str] = (), extra: Sequence[str] = (),
           env: dict[str, str] | None = None, wait: bool = True, work: bool = False,
           sync_interval: float = 1.0) -> Node:
    """Start `swarm join` on a free loopback port with `home`; wait until its API answers.

    Without `work` the node only keeps the memory in sync (`--no-work`): no training."""
    home.mkdir(parents=True, exist_ok=True)
    verbosity = os.environ.get("SWARM_NODE_LOG", "-v")     # -vv: debug logs in HOME/node.log
    argv = [sys.executable, "-c", "from swarm.cli import main; main()", verbosity, "join",
            "--home", str(home), "--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns",
            "--network", network, "--sync-interval", str(sync_interval),
            *([] if work else ["--no-work"])]
    for addr in bootstrap:
        argv += ["--bootstrap", addr]
    log = open(home / "node.log", "ab")
    proc = subprocess.Popen([*argv, *extra], stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, **(env or {})}, start_new_session=True)
    STARTED.append(proc)
    node = Node(home, proc)
    if wait:
        wait_until_serving(node)
    return node


def wait_until_serving(node: Node) -> None:
    """Wait for the node's api.json (written by this process) and a /status answer."""
    def ready() -> bool:
        if node.proc.poll() is not None:
            raise AssertionError(f"node exited with {node.proc.returncode}:\n{log_tail(node.home)}")
        try:
            info = json.loads((node.home / "api.json").read_text())
            if info["pid"] != node.proc.pid:
                return False
            node.url, node.token = info["url"], (node.home / "api.token").read_text().strip()
            return bool(node.status()["peer_id"])
        except (OSError, ValueError, KeyError, urllib.error.URLError):
            return False

    wait_for(ready, START_TIMEOUT_S, f"node in {node.home} to serve")


def log_tail(home: Path, lines: int = 30) -> str:
    """The end of a node's log, for failure messages."""
    try:
        return "\n".join((home / "node.log").read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def launch_swarm(root: Path, n: int, network: str, extra: Sequence[str] = (),
                 env: dict[str, str] | None = None, work: bool = False,
                 sync_interval: float = 1.0) -> list[Node]:
    """`n` nodes: the first, then the rest bootstrapping from it (started in parallel)."""
    first = launch(root / "node0", network, extra=extra, env=env, work=work,
                   sync_interval=sync_interval)
    rest = [launch(root / f"node{i}", network, [first.addr], extra, env, wait=False, work=work,
                   sync_interval=sync_interval) for i in range(1, n)]
    for node in rest:
        wait_until_serving(node)
    return [first, *rest]


def kill_all() -> None:
    """Kill every node process started here that is still running (the conftest finalizer).

    All are killed before any is waited for: a second Ctrl-C during the waits used to leave the
    nodes not yet reached running on, orphaned (24 of ~80 once)."""
    for proc in STARTED:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
    for proc in STARTED:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
    STARTED.clear()
