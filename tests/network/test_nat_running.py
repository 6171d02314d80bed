"""docs/RUNNING.md followed literally across machines (real Linux namespaces, root only).

Four machines (swarm/bench/netns.py): `a` and `b` on the public segment, `c` and `d` behind one
home router (MASQUERADE NAT that drops unsolicited inbound), as volunteers sharing a router. Each
runs the doc's command with the defaults it documents (TCP 7400 on every interface, mDNS and the
DHT on, network `main`), plus its own `--home` and `--no-work`: `swarm join --relay` on `a`, then
the bootstrap line `a` prints on `b` and `c`, and nothing on `d` (mDNS on its LAN, then the DHT).
Asserted on records and on what `swarm status` / `swarm peers` show, never on speed. Skips in one
line where namespaces cannot be made.
"""
from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from memory import stream
from swarm.bench import nodes
from swarm.bench.netns import NatLab, NsNode, unavailable
from tests.network.launcher import ids_of, make_records, wait_for

pytestmark = pytest.mark.timeout(600)
CLI = [sys.executable, "-c", "from swarm.cli import main; main()"]
MACHINES = {"a": "wan", "b": "pub2", "c": "h1", "d": "h1-2"}
WAIT_S = 150                    # generous: four nodes on a loaded 2-core machine


@pytest.fixture
def lab() -> Iterator[NatLab]:
    reason = unavailable()
    if reason:
        pytest.skip(f"no network namespaces here: {reason}")
    made = NatLab(homes=1, publics=2, hosts=2)
    try:
        yield made.build()
    finally:
        nodes.kill_all()
        made.destroy()          # kills what runs inside, deletes namespaces, veths, NAT tables


def test_the_documented_commands_make_a_swarm_across_machines_and_a_home_router(
        lab: NatLab, tmp_path: Path) -> None:
    a = _join(lab, tmp_path, "a", "--relay")
    line = wait_for(lambda: _bootstrap_line(a), 60, "a's bootstrap line")
    assert line.startswith(f"/ip4/{lab.public_ip(1)}/tcp/7400/p2p/"), line   # not 0.0.0.0 or 127.
    # b and c paste the line; d, on c's LAN, is given none: mDNS finds c, the DHT the others
    others = {name: _join(lab, tmp_path, name, *(["--bootstrap", line] if name != "d" else []),
                          wait=False) for name in "bcd"}
    for node in others.values():
        nodes.wait_until_serving(node)
    c, d = others["c"], others["d"]
    every = {"a": a, **others}

    # everyone finds everyone
    for name, node in every.items():
        wait_for(lambda node=node: len(_connected(node)) >= 3, WAIT_S, f"{name} linked to all")
    for name, node in every.items():
        want = "private" if name in "cd" else "public"
        wait_for(lambda node=node, want=want: node.status()["nat"]["dialback"] == want, WAIT_S,
                 f"{name}'s dial-back verdict {want}")
    for node in (c, d):                 # behind the router: a slot on the relay, a circuit address
        wait_for(lambda node=node: node.status()["nat"]["relays"], WAIT_S, "a relay reservation")
        assert any("/p2p-circuit/" in x for x in node.status()["addrs"])
    # neighbours link directly over their LAN (hole-punched: direct, after a relayed first contact)
    d_id = d.status()["peer_id"]
    wait_for(lambda: _connected(c).get(d_id) in ("direct", "hole-punched"), WAIT_S,
             "a direct link between c and d")
    assert a.status()["relay"]["reservations"] == 2

    status = _cli(lab, "c", tmp_path, "status")
    assert "relayed via" in status and "nat: dialback" in status and "/p2p-circuit/" in status
    assert "direct" in _cli(lab, "c", tmp_path, "peers")

    # records cross both ways: from behind the router, and from the public side into it
    from_c, from_b = _import(lab, tmp_path, "c", 5), _import(lab, tmp_path, "b", 5)
    for name, node in every.items():
        wait_for(lambda node=node: node.has_all(from_c | from_b), WAIT_S, f"records on {name}")

    # d stops; records made meanwhile reach it once it runs again (no --bootstrap: peers.json)
    assert d.stop() == 0
    missed = _import(lab, tmp_path, "b", 5) | _import(lab, tmp_path, "c", 5)
    d = _join(lab, tmp_path, "d")
    wait_for(lambda: d.has_all(missed), WAIT_S, "d's catch-up after its restart")


def _join(lab: NatLab, root: Path, name: str, *args: str, wait: bool = True) -> NsNode:
    """RUNNING.md's `swarm join ...` on machine `name` (its own --home, no training)."""
    home = root / name
    home.mkdir(exist_ok=True)
    log = open(home / "node.log", "ab")
    proc = lab.popen(MACHINES[name], [*CLI, "join", "--home", str(home), "--no-work", *args],
                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    nodes.STARTED.append(proc)
    node = NsNode(home, proc)
    node.ns = lab.ns(MACHINES[name])
    if wait:
        nodes.wait_until_serving(node)
    return node


def _bootstrap_line(node: NsNode) -> str | None:
    """The multiaddr of `swarm join --bootstrap ...` that the node printed at start."""
    found = re.findall(r"swarm join --bootstrap (\S+)", (node.home / "node.log").read_text())
    return found[-1] if found else None


def _connected(node: NsNode) -> dict[str, str]:
    return {p["peer_id"]: p.get("link") or "" for p in node.request("/peers") if p.get("connected")}


def _cli(lab: NatLab, name: str, root: Path, *args: str) -> str:
    """`swarm ARGS --home HOME` run on machine `name` (a table is 80 columns: COLUMNS=200 keeps
    the long values on one line)."""
    done = subprocess.run(["ip", "netns", "exec", lab.ns(MACHINES[name]), "env", "COLUMNS=200",
                           *CLI, *args, "--home", str(root / name)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _import(lab: NatLab, root: Path, name: str, count: int) -> set[str]:
    """`swarm memory import FILE` of `count` fresh records on machine `name`; their ids."""
    raws = make_records(count)
    path = root / f"records-{name}-{len(list(root.glob('records-*')))}.bin"
    with open(path, "wb") as out:
        stream.write(out, raws)
    assert f'"accepted": {count}' in _cli(lab, name, root, "memory", "import", str(path), "--json")
    return ids_of(raws)
