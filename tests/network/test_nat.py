"""Two nodes, each behind its own NAT, exchange records through a relay (real Linux namespaces).

The set-up (swarm/bench/netns.py) is made by the test: a public segment with the relay, two homes
behind MASQUERADE NATs (nftables) that drop unsolicited inbound traffic. The relay runs on a swarm
network of its own, so records between the homes can only travel over the homes' own link (through
the relay's circuit, or direct after hole punching). Skips in one line where namespaces cannot be
made (not root, no `ip`/`nft`). Whether hole punching upgraded the link is printed and written to
`nat_result.json` in the test's tmp folder (not asserted: it depends on the NAT's port mapping).
"""
from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from swarm.bench import nat as natbench
from swarm.bench.netns import NatLab, unavailable
from tests.network.launcher import ids_of, make_records, wait_for

pytestmark = pytest.mark.timeout(600)
WAIT_S = 150            # generous: three nodes on a loaded 2-core machine; never a speed bound
CLI = [sys.executable, "-c", "from swarm.cli import main; main()"]


@pytest.fixture
def lab() -> Iterator[NatLab]:
    reason = unavailable()
    if reason:
        pytest.skip(f"no network namespaces here: {reason}")
    made = NatLab()
    try:
        yield made.build()
    finally:
        made.destroy()          # kills what runs inside, deletes namespaces, veths, NAT tables


def test_two_homes_behind_nat_exchange_records_through_a_relay(lab: NatLab,
                                                               tmp_path: Path) -> None:
    swarm = natbench.start_lab(lab, tmp_path)
    a, b = swarm.homes
    early = make_records(5)                     # before the homes meet: only sync can carry them
    assert a.ingest(early)["accepted"] == 5

    # each home learns by dial-back that it cannot be dialed, and reserves a slot on the relay
    for home in (a, b):
        wait_for(lambda home=home: home.status()["nat"]["relays"], WAIT_S, "a relay reservation",
                 0.5)
        assert home.status()["nat"]["dialback"] == "private"
    # the relay's own verdict comes from its own round of dial-backs, on its own schedule
    wait_for(lambda: swarm.relay.status()["nat"]["dialback"] == "public", WAIT_S,
             "the relay's dial-back verdict", 0.5)
    status = a.status()
    assert any("/p2p-circuit/" in addr for addr in status["addrs"]), status["addrs"]
    assert status["reachability"].startswith(("relayed via", "hole-punched"))

    first_link = wait_for(lambda: natbench.link_between(b, a), WAIT_S,
                          "a link between the homes", 0.5)
    assert first_link in ("relayed", "hole-punched")
    wait_for(lambda: b.has_all(ids_of(early)), WAIT_S, "sync of a's earlier records to b")

    late_a, late_b = make_records(5), make_records(5)
    a.ingest(late_a)
    b.ingest(late_b)
    wait_for(lambda: b.has_all(ids_of(late_a)) and a.has_all(ids_of(late_b)), WAIT_S,
             "gossip between the homes")

    table = subprocess.run(["ip", "netns", "exec", a.ns, *CLI, "peers", "--home", str(a.home)],
                           capture_output=True, text=True, timeout=60).stdout
    assert "relayed" in table or "hole-punched" in table, table      # `swarm peers`: the link

    punched = _wait_quietly(lambda: natbench.link_between(a, b) == "hole-punched", 20)
    relay = swarm.relay.status()["relay"]
    assert relay["reservations"] == 2 and not relay["refused"], relay
    result = {"first_link": first_link, "hole_punched": punched,
              "link_now": natbench.link_between(a, b), "a": a.status()["reachability"],
              "relay": relay}
    (tmp_path / "nat_result.json").write_text(json.dumps(result, indent=2))
    print(f"\nNAT test: first link {first_link}; hole punching upgraded it: {punched}")


def _wait_quietly(condition, timeout: float) -> bool:
    try:
        wait_for(condition, timeout, "", 0.5)
        return True
    except AssertionError:
        return False


def test_a_catch_up_larger_than_a_circuit_resumes_on_the_next_circuit(lab: NatLab,
                                                                      tmp_path: Path) -> None:
    """Hole punching off, so the relay is the only path; it cuts each circuit after 1 MiB. A
    catch-up of ~1.6 MB still completes: each cut drops the link (no strike: the relay cut it),
    the node redials through the relay, and the next pull asks only for what is still missing.
    (Each circuit must carry at least one sync batch, 256 KiB, for a catch-up to progress.)"""
    from swarm.bench.network import _records

    cap = 1024 * 1024
    swarm = natbench.start_lab(lab, tmp_path, hole_punch=False, relay_caps={"circuit_bytes": cap})
    a, b = swarm.homes
    raws = _records(2400, seed=5)
    assert sum(map(len, raws)) > 1.3 * cap
    assert a.ingest(raws)["accepted"] == 2400
    wait_for(lambda: b.has_all(ids_of(raws)), 2 * WAIT_S, "b's catch-up through the relay", 0.5)
    assert swarm.relay.status()["relay"]["circuits_opened"] >= 2
    assert natbench.link_between(b, a) in ("", "relayed")
    assert not [p for p in b.request("/peers") if p.get("banned_until")]
