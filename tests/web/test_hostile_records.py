"""Any author's records reach the pages and the report whole: text as text, numbers as JSON.

A stranger's valid, signed claim and runs carry HTML in every free-text field they have; the
report (one file with the data inlined in a script) and the page shells must hold only the
elements this code writes, and the strings must read back unchanged.
"""
from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from memory import canonical, codec, records as R, synthetic
from memory.store import ReadOnlyMemory, Store
from node.home import memory_path
from swarm.reader import open_reader
from swarm.web.app import dashboard_app
from swarm.web.report import render

# Tag names ignore case: "</SCRIPT>" closes a script as "</script>" does; "<!--" would open a
# comment state inside one.
PAYLOAD = "</SCRIPT><svg onload=document.title=/pwned/.source><!--<script>"
SHELL_TAGS = {"html", "head", "meta", "title", "link", "style", "script", "body", "nav", "a",
              "span", "main"}


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.scripts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.add(tag)

    def handle_data(self, data: str) -> None:
        if self.lasttag == "script":
            self.scripts.append(data)


def _parse(text: str) -> _Tags:
    parser = _Tags()
    parser.feed(text)
    return parser


def _hostile_home(home: Path) -> Path:
    records = synthetic.history(confirms=6)
    base = [r.id for r in records if r.kind == "run" and r.body.purpose == "baseline"]
    (stranger,) = synthetic.keypairs(1, seed=998)
    diff = {PAYLOAD: PAYLOAD}
    config = {**synthetic.HISTORY_BASE, **diff}
    after = max(r.ts for r in records)
    runs = [codec.sign(stranger, "run", i + 1, synthetic.run_body(
        synthetic.HISTORY_TRACK, config, seed=700 + i, val_bpb=1.5, purpose="confirm"),
        ts=after + 1000 * (i + 1)) for i in range(3)]
    claim = R.ClaimBody(track=synthetic.HISTORY_TRACK,
                        baseline_hash=canonical.config_hash(synthetic.HISTORY_BASE),
                        candidate_hash=canonical.config_hash(config), diff=diff,
                        baseline_runs=base, candidate_runs=[r.id for r in runs], effect=-0.2,
                        summary=PAYLOAD)
    records += runs + [codec.sign(stranger, "claim", 4, claim, ts=after + 10_000)]
    with Store(memory_path(home), helpers=0) as store:
        assert store.add(records).accepted == len(records)
    return home


def _answers(home: Path, *paths: str) -> list[Any]:
    """The dashboard's answers to GET `paths`, in order, over the home's memory."""
    memory = ReadOnlyMemory(memory_path(home))
    try:
        with TestClient(dashboard_app(memory, home), base_url="http://127.0.0.1") as client:
            return [client.get(path) for path in paths]
    finally:
        memory.close()


def test_the_report_holds_hostile_text_as_text(home: Path) -> None:
    with open_reader(_hostile_home(home)) as reader:
        text = render(reader, home, None)
    parsed = _parse(text)
    assert parsed.tags <= SHELL_TAGS
    inlined = next(s for s in parsed.scripts if s.startswith("window.SWARM_REPORT = "))
    data = json.loads(inlined[len("window.SWARM_REPORT = "):].rstrip(";"))
    claims = next(s for s in data["sections"] if s["view"] == "claims")["data"]
    assert {PAYLOAD: PAYLOAD} in [c["diff"] for c in claims["untrusted_claims"]]
    # The script's text neither closes it nor opens a comment in it (this code writes "</script>").
    assert "</SCRIPT" not in text and "<!--<script" not in text


def test_a_page_shell_holds_hostile_url_parameters_as_text(home: Path) -> None:
    memory = ReadOnlyMemory(memory_path(_hostile_home(home)))
    try:
        with TestClient(dashboard_app(memory, home), base_url="http://127.0.0.1") as client:
            page = client.get("/runs", params={"author": PAYLOAD, "track": "a&b"}).text
    finally:
        memory.close()
    parsed = _parse(page)
    assert parsed.tags <= SHELL_TAGS
    boot = json.loads(next(s for s in parsed.scripts if '"view"' in s))
    assert boot["params"] == {"author": PAYLOAD, "track": "a&b"}


def test_a_findings_extreme_effects_leave_the_knobs_page_and_report_whole(home: Path) -> None:
    # Finite numbers in range for the schema, whose effect +- 2 se overflows to inf (which JSON
    # cannot carry: the knobs view answered 500 and `swarm report` raised).
    _hostile_home(home)
    (stranger,) = synthetic.keypairs(1, seed=998)
    finding = R.FindingBody(track=synthetic.HISTORY_TRACK, title="big", text="big", refs=[],
                            effects=[R.KnobEffect(knob="n_layer", value=6, effect=1e308,
                                                  stderr=1e308, n=2)])
    with Store(memory_path(home), helpers=0) as store:
        assert store.add([codec.sign(stranger, "finding", 5, finding)]).accepted == 1
    (answer,) = _answers(home, "/json/knobs")
    assert answer.status_code == 200
    assert answer.json()["effects"][0]["hi"] is None
    with open_reader(home) as reader:
        assert "window.SWARM_REPORT" in render(reader, home, None)


def test_text_that_looks_like_json_stays_text(home: Path) -> None:
    # Every string column was parsed when it began with [ or {: a node named '[{"text": 1}]'
    # became a list, and the overview (every node's home page) stopped drawing.
    _hostile_home(home)
    (stranger,) = synthetic.keypairs(1, seed=998)
    looks = '[{"text": 1}]'
    node = R.NodeBody(name=looks, hardware=synthetic.HARDWARE, software={}, addrs=[],
                      capabilities=[])
    with Store(memory_path(home), helpers=0) as store:
        assert store.add([codec.sign(stranger, "node", 5, node)]).accepted == 1
    memory = ReadOnlyMemory(memory_path(home))
    try:
        with TestClient(dashboard_app(memory, home), base_url="http://127.0.0.1") as client:
            peers = client.get("/json/overview").json()["peers"]
            claim = next(c for c in client.get("/json/claims").json()["untrusted_claims"]
                         if c["diff"] == {PAYLOAD: PAYLOAD})
            summary = client.get(f"/json/claims/{claim['claim']}").json()["summary"]
    finally:
        memory.close()
    assert looks in [p["name"] for p in peers] and summary == PAYLOAD


def test_a_name_like_a_trusted_nodes_carries_its_key_whatever_the_flood(home: Path) -> None:
    """200 newer nodes push a root's node record out of the overview's peers (the newest 200);
    one of them is named as that root's node: it still carries its key's tail, and the root's
    name is never shown bare by another key."""
    from roles import trust

    (root,) = synthetic.keypairs(1, seed=5)
    flood = synthetic.keypairs(200, seed=6)

    def node(key, name: str, ts: int) -> R.Record:
        return codec.sign(key, "node", 1, R.NodeBody(name=name, hardware=synthetic.HARDWARE,
                                                      software={}, addrs=[], capabilities=[]),
                          ts=ts)
    records = [node(root, "lab-gpu", 1_000)] + [
        node(k, "lab-gpu" if i == 0 else f"free-{i}", 2_000 + i) for i, k in enumerate(flood)]
    with Store(memory_path(home), helpers=0) as store:
        assert store.add(records).accepted == len(records)
    trust.pin(home, root.peer_id, note="test")
    peers = _answers(home, "/json/overview")[0].json()["peers"]
    assert root.peer_id not in [p["author"] for p in peers] and len(peers) == 200
    (twin,) = [p for p in peers if p["name"] == "lab-gpu"]
    assert twin["label"] == f"lab-gpu:\u2026{flood[0].peer_id[-8:]}"
    assert twin["trust"] == "untrusted"
    others = {p["label"] for p in peers if p["name"] != "lab-gpu"}
    assert others == {f"free-{i}" for i in range(1, 200)}
