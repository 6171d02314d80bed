"""docs/RUNNING.md's research swarm across five machines, simulated in Linux network namespaces.

    sudo .venv/bin/python scripts/netns_swarm.py [--timeout 1500] [--keep DIR]

Root only (`ip`, `nft`). The machines (swarm/bench/netns.py): a, b, c and d on one public segment
(203.0.113.1-4), e behind a home router (MASQUERADE NAT that drops unsolicited inbound). Each has
its own namespace and its own HOME, so each runs the commands of the docs as they are written, with
no `--home` and the default port 7400:

    a:     swarm join --relay $W                   (W: "A local swarm that does research")
    b, c:  swarm join --bootstrap LINE $W          (LINE: the one a printed)
    then, once a verified claim is in (a's panel counts it):
    d:     swarm join --bootstrap LINE-OF-b --no-work      (late: catches up by sync)
    e:     swarm join --bootstrap LINE --no-work           (behind NAT: private, a relay slot)
    a:     Ctrl-C, then swarm join --relay $W again        (no --bootstrap: HOME/.swarm/peers.json)

It checks what the docs say as it goes (the line's address, `swarm findings` agreeing with the
node's panel, `swarm trust add`, the dashboard, reachability, the restart's catch-up), prints the
timings as JSON (seconds from each machine's `swarm join`; record times are the nodes' own) and
deletes every namespace, veth, NAT table and process it made, also on Ctrl-C or failure. On the
shared 2-core machine (load 4-9) it took 7-8 minutes (docs/RUNNING.md has the figures).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from swarm.bench import nodes  # noqa: E402
from swarm.bench.netns import NatLab, NsNode, in_netns, unavailable  # noqa: E402

W = ("--budget-tokens 20000 --threads 1 --agent offline --min-baseline 4 --gate confirm_max=2 "
     "--gate min_confirm=2 --gate confirm_cap=2 --gate verify_seeds=2 --gate verify_max=2 "
     "--gate null_claim=0.01 --gate gray_above_sd=0.5 --no-mdns").split()
MACHINES = {"a": "wan", "b": "pub2", "c": "pub3", "d": "pub4", "e": "h1"}


class Walk:
    """The lab, the machines' homes and processes, and what was measured."""

    def __init__(self, lab: NatLab, root: Path) -> None:
        self.lab, self.root = lab, root
        self.t0: dict[str, float] = {}
        self.nodes: dict[str, NsNode] = {}
        self.figures: dict[str, Any] = {}

    def home(self, m: str) -> Path:
        """Machine m's HOME (its node home is HOME/.swarm, the default)."""
        return self.root / f"home-{m}"

    def argv(self, m: str, *args: str) -> list[str]:
        """`swarm ARGS` as typed on machine m: its namespace, its HOME, no SWARM_* from here."""
        return ["ip", "netns", "exec", self.lab.ns(MACHINES[m]), "env", "-u", "SWARM_HOME",
                "-u", "SWARM_BOOTSTRAP", f"HOME={self.home(m)}", "COLUMNS=200", sys.executable,
                "-m", "swarm.cli", *args]

    def join(self, m: str, *args: str) -> NsNode:
        """`swarm join ARGS` on machine m, its output in HOME/join.log."""
        self.home(m).mkdir(exist_ok=True)
        log = open(self.home(m) / "join.log", "ab")
        self.t0[m] = time.time()
        proc = subprocess.Popen(self.argv(m, "join", *args), cwd=REPO, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        nodes.STARTED.append(proc)
        node = NsNode(self.home(m) / ".swarm", proc)
        node.ns = self.lab.ns(MACHINES[m])
        nodes.wait_until_serving(node)
        self.nodes[m] = node
        return node

    def cli(self, m: str, *args: str) -> str:
        """`swarm ARGS` on machine m; its stdout (a failure stops the walk with its stderr)."""
        done = subprocess.run(self.argv(m, *args), cwd=REPO, capture_output=True, text=True,
                              timeout=300)
        if done.returncode:
            raise SystemExit(f"swarm {' '.join(args)} on {m} failed: {done.stderr.strip()}")
        return done.stdout

    def line(self, m: str) -> str:
        """The `swarm join --bootstrap ...` address machine m printed."""
        text = (self.home(m) / "join.log").read_text()
        found = re.findall(r"swarm join --bootstrap (\S+)", text)
        if not found:
            raise SystemExit(f"{m} printed no bootstrap line:\n{text}")
        return found[-1]

    def since(self, m: str, ms: float) -> float:
        return round(ms / 1000 - self.t0[m], 1)


def wait(what: str, check: Any, timeout: float, every: float = 2.0) -> Any:
    """Poll `check` until it returns something truthy; stop the walk after `timeout` s."""
    end = time.time() + timeout
    while time.time() < end:
        got = check()
        if got:
            return got
        time.sleep(every)
    raise SystemExit(f"gave up after {timeout:.0f} s waiting for {what}")


def work(node: NsNode) -> dict[str, Any]:
    current = node.status().get("current_work") or [{}]
    return current[0]


def run_timings(walk: Walk, m: str) -> dict[str, Any]:
    """Seconds from m's join to its first own run record, and to the first run of another
    machine stored on m (with that record's delay from its author's timestamp)."""
    node = walk.nodes[m]
    me = node.status()["peer_id"]
    rows = node.query("SELECT id, author, ts FROM runs ORDER BY ts")["rows"]
    stored = dict(node.request("/arrivals?since=0"))
    own = [r for r in rows if r[1] == me]
    other = sorted((stored[r[0]], r) for r in rows if r[1] != me and r[0] in stored)
    out: dict[str, Any] = {"runs": len(rows), "own": len(own)}
    if own:
        out["first_own_run_s"] = walk.since(m, own[0][2])
    if other:
        at, first = other[0]
        out["first_other_run_stored_s"] = walk.since(m, at)
        out["its_delay_s"] = round((at - first[2]) / 1000, 2)
    return out


def research(walk: Walk, timeout: float) -> None:
    """a, b and c as the docs run them, until a verified claim; then the browsing commands."""
    a = walk.join("a", "--relay", *W)
    line = walk.line("a")
    assert line.startswith("/ip4/203.0.113.1/tcp/7400/p2p/"), line
    for m in "bc":
        walk.join(m, "--bootstrap", line, *W)
    verified = wait("a verified claim (a's panel)",
                    lambda: (work(a).get("claims") or {}).get("verified"), timeout, 5)
    walk.figures["verified_claim_s"] = round(time.time() - walk.t0["a"], 1)
    walk.figures["verified_by_panel"] = verified
    # swarm findings on the same home agrees with the panel (it judged by the default gate)
    def verified_in_findings() -> dict[str, Any] | None:
        claims = json.loads(walk.cli("a", "findings", "--json"))["claims"]
        return next((c for c in claims if c["status"] == "verified"), None)
    claim = wait("swarm findings to show the verified claim", verified_in_findings, 120, 5)
    assert "verified" in walk.cli("a", "show", claim["id"][:8])
    overview = in_netns(a.ns, lambda: _get(a.url + "/json/overview"))     # no token needed
    assert overview["node"]["peer_id"] == a.status()["peer_id"]
    b_id = walk.nodes["b"].status()["peer_id"]
    assert "trusting" in walk.cli("a", "trust", "add", b_id, "--note", "machine b")
    assert "machine b" in walk.cli("a", "trust")
    for m in "abc":
        walk.figures[m] = run_timings(walk, m)


def late_and_nat(walk: Walk, timeout: float) -> None:
    """d joins late through b's line and catches up; e joins from behind its router."""
    have = walk.nodes["a"].record_ids()
    d = walk.join("d", "--bootstrap", walk.line("b"), "--no-work")
    wait("d's catch-up", lambda: d.has_all(have), timeout, 1)
    walk.figures["d_caught_up_s"] = round(time.time() - walk.t0["d"], 1)
    walk.figures["d_records_then"] = len(have)
    e = walk.join("e", "--bootstrap", walk.line("a"), "--no-work")
    wait("e's relay slot", lambda: e.status()["nat"]["relays"], timeout, 2)
    walk.figures["e_private_with_relay_s"] = round(time.time() - walk.t0["e"], 1)
    assert e.status()["nat"]["dialback"] == "private"
    assert "relayed via" in walk.cli("e", "status")
    wait("e's copy of a's records", lambda: e.has_all(have), timeout, 1)
    walk.figures["e_caught_up_s"] = round(time.time() - walk.t0["e"], 1)


def restart(walk: Walk, timeout: float) -> None:
    """Ctrl-C on a, a pause, `swarm join --relay $W` again: it redials the peers it saved."""
    saved = json.loads((walk.home("a") / ".swarm" / "peers.json").read_text())
    walk.figures["a_peers_saved"] = len(saved)
    a = walk.nodes["a"]
    stop = time.time()
    a.proc.send_signal(signal.SIGINT)
    a.proc.wait(120)
    walk.figures["a_stopped_in_s"] = round(time.time() - stop, 1)
    time.sleep(20)                                   # b and c go on training meanwhile
    missed = walk.nodes["b"].record_ids()
    a = walk.join("a", "--relay", *W)
    wait("a's catch-up after its restart", lambda: a.has_all(missed), timeout, 1)
    walk.figures["a_restart_caught_up_s"] = round(time.time() - walk.t0["a"], 1)
    walk.figures["a_peers_after_restart"] = len(wait(
        "a's peers", lambda: [p for p in a.request("/peers") if p.get("connected")], timeout))


def _get(url: str) -> Any:
    import urllib.request
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--timeout", type=float, default=1500, help="seconds per wait")
    parser.add_argument("--keep", type=Path, help="put the machines' homes here (kept)")
    args = parser.parse_args()
    reason = unavailable()
    if reason:
        raise SystemExit(f"cannot build the namespaces: {reason}")
    root = args.keep or Path(tempfile.mkdtemp(prefix="netns-swarm-"))
    root.mkdir(parents=True, exist_ok=True)
    lab = NatLab(homes=1, publics=4, hosts=1)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))   # cleaned up like Ctrl-C
    try:
        lab.build()
        walk = Walk(lab, root)
        research(walk, args.timeout)
        late_and_nat(walk, args.timeout)
        restart(walk, args.timeout)
        print(json.dumps(walk.figures, indent=1))
    finally:
        nodes.kill_all()
        lab.destroy()
        if args.keep is None:
            subprocess.run(["rm", "-rf", str(root)])
        print(f"namespaces deleted{'' if args.keep is None else f'; homes kept in {root}'}",
              file=sys.stderr)


if __name__ == "__main__":
    os.chdir(REPO)
    main()
