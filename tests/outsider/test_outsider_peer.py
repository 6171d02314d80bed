"""An outsider's peer (tests/outsider/peer.py, written from docs/ alone) against a real node.

The node is `swarm join --no-work` in a subprocess on loopback; the test inspects what it stored
through its local read API (docs/PROTOCOL.md, "Local read API"). The peer never imports swarm:
`test_the_peer_imports_nothing_of_swarm` checks its imports.
"""
from __future__ import annotations

import ast
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import msgpack
import pytest
import trio

from tests.outsider import peer as P
from tests.outsider import reconcile as C
from tests.outsider import records as R

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "docs" / "vectors"
TRACK = json.loads((ROOT / "docs" / "schema" / "tracks.json").read_text())["tinystories-cpu"]
VALID = json.loads((ROOT / "docs" / "schema" / "data.json").read_text())["tinystories-cpu"]["valid.txt"]
NETWORK = "outsider-test"
WAIT_S = 120  # a loaded 2-core machine: generous bounds, never a pass that depends on speed
SWARM_PACKAGES = {"swarm", "memory", "node", "roles"}  # the project's top-level packages


class Node:
    """A `swarm join --no-work` subprocess and its local API."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.log = open(home.parent / "node.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "swarm.cli", "join", "--home", str(home), "--no-work",
             "--no-mdns", "--no-dht", "--reachability", "public", "--network", NETWORK,
             "--listen", "/ip4/127.0.0.1/tcp/0"],
            cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + WAIT_S
        while not (home / "api.json").exists() or not (home / "api.token").exists():
            assert self.proc.poll() is None, self.log_tail()
            assert time.monotonic() < deadline, "node did not start\n" + self.log_tail()
            time.sleep(0.2)
        time.sleep(0.2)  # api.json is written whole, but give the token file its moment too
        self.url = json.loads((home / "api.json").read_text())["url"]
        self.token = (home / "api.token").read_text().strip()
        status = self.get("/status")
        self.addr, self.network, self.peer_id = status["addrs"][0], status["network"], status["peer_id"]

    def log_tail(self) -> str:
        self.log.flush()
        return (self.home.parent / "node.log").read_text(errors="replace")[-3000:]

    def call(self, path: str, data: bytes | None = None, kind: str = "application/json") -> Any:
        req = urllib.request.Request(self.url + path, data=data, headers={
            "Authorization": f"Bearer {self.token}", "Content-Type": kind})
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read())

    def get(self, path: str) -> Any:
        return self.call(path)

    def query(self, sql: str, *params: Any) -> list[list[Any]]:
        body = json.dumps({"sql": sql, "params": list(params)}).encode()
        return self.call("/query", body)["rows"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("outsider") / "home"
    home.mkdir()
    started = Node(home)
    try:
        yield started
    finally:
        started.stop()


def hypotheses(identity: R.Identity, n: int, first_seq: int = 1) -> list[bytes]:
    """`n` signed hypothesis records by `identity`, encoded by the outsider's code."""
    return [R.encode_record(identity, "hypothesis",
                            {"track": TRACK, "diff": {"n_layer": 1 + seq % 48, "lr": 0.001 * seq},
                             "rationale": f"outsider {seq}", "source": "human"}, seq)
            for seq in range(first_seq, first_seq + n)]


def wait_for(predicate, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        assert time.monotonic() < deadline, f"waited {WAIT_S} s for {what}"
        time.sleep(0.2)


# ---------------------------------------------------------------- offline: docs against vectors


def test_the_peer_imports_nothing_of_swarm() -> None:
    """The peer's modules import third-party libraries and each other, nothing of the project."""
    here = Path(P.__file__).parent
    modules = {path.stem for path in here.glob("*.py")} - {"__init__"}
    peer_modules = {m for m in modules if not m.startswith("test_")}
    assert peer_modules == {"peer", "records", "reconcile"}
    imported = set()
    for name in peer_modules:
        for node in ast.walk(ast.parse((here / f"{name}.py").read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level:
                assert node.level == 1 and node.module in peer_modules, node.module
            elif isinstance(node, ast.ImportFrom):
                imported.add((node.module or "").split(".")[0])
    assert not imported & (SWARM_PACKAGES | {"tests"}), imported & SWARM_PACKAGES
    assert {"libp2p", "nacl", "msgpack"} <= imported


def test_record_vectors_encode_and_check_byte_for_byte() -> None:
    vectors = json.loads((VECTORS / "records.json").read_text())
    assert bytes.fromhex(vectors["signing_domain_hex"]) == R.SIGNING_DOMAIN
    for vec in vectors["records"]:
        identity = R.Identity(bytes.fromhex(vec["seed_hex"]))
        assert identity.peer_id == vec["author"]
        env = vec["envelope"]
        raw = R.encode_record(identity, env["kind"], env["body"], env["seq"], env["ts"], env["v"])
        assert raw.hex() == vec["raw_hex"], vec["kind"]
        rec = R.check_record(raw)
        assert rec.id == vec["id"] and R.pack(rec.envelope).hex() == vec["payload_hex"]
    for vec in vectors["refused"]:
        raw = bytes.fromhex(vec["raw_hex"])
        if vec["reason"] is None:
            R.check_record(raw)
            continue
        with pytest.raises(R.Refused) as refused:
            R.check_record(raw)
        assert refused.value.reason == vec["reason"], vec["why"]


def _unhex(obj: Any) -> Any:
    if isinstance(obj, str) and obj.startswith("hex:"):
        return bytes.fromhex(obj[4:])
    return [_unhex(x) for x in obj] if isinstance(obj, list) else obj


def test_sync_vectors_reproduce_the_exchange_frame_by_frame() -> None:
    vec = json.loads((VECTORS / "sync.json").read_text())["reconcile_v2"]
    r_keys = sorted((ts, int(h, 16)) for ts, h in vec["r_keys"])
    s_keys = sorted((ts, int(h, 16)) for ts, h in vec["s_keys"])

    def keys_in(lo, hi):
        return [k for k in r_keys if lo <= k < hi]

    requests = [C._ask(keys_in, (0, 0), (C.TOP, 0))]

    class Responder(R.Memory):  # S, from its keys alone (a split answer needs no records)
        def in_range(self, lo, hi):
            return [k for k in s_keys if lo <= k < hi]

    assert C.answer(Responder(), requests[0])[0] == msgpack.unpackb(
        bytes.fromhex(vec["rounds"][0]["replies_msgpack_hex"]))[0]
    for rnd in vec["rounds"]:
        assert requests == _unhex(rnd["requests"])
        assert msgpack.packb(requests, use_bin_type=True).hex() == rnd["requests_msgpack_hex"]
        answers = msgpack.unpackb(bytes.fromhex(rnd["replies_msgpack_hex"]))
        assert answers == _unhex(rnd["replies"])
        requests = [r for q, a in zip(requests, answers) for r in C.next_requests(keys_in, q, a)]
    assert requests == []  # the last round's "h" answers end the exchange
    first = msgpack.unpackb(bytes.fromhex(vec["rounds"][0]["replies_msgpack_hex"]))[0]
    bounds, fps = C.split_bounds((0, 0), (C.TOP, 0), first)
    for i, fp in enumerate(fps):  # S's fingerprints, recomputed from S's keys
        assert fp == C.fingerprint(k[1] for k in s_keys if bounds[i] <= k < bounds[i + 1])


# ---------------------------------------------------------------- live: a real node


def test_an_outsider_peer_syncs_publishes_and_is_struck(node: Node) -> None:
    stranger = R.Identity.fresh()
    seeded = hypotheses(stranger, 340)  # 16 sub-ranges of > 16 keys: splits, then sketches
    answer = node.call("/ingest", msgpack.packb(seeded, use_bin_type=True), "application/msgpack")
    assert answer["accepted"] == 340, answer
    me = R.Identity.fresh()
    gossiped, *synced = hypotheses(me, 31)
    mine = R.Memory()  # what this peer serves by sync; filled once the pulls are checked
    served: list[int] = []
    got: dict[str, Any] = {}

    async def body(host, pubsub) -> None:
        peer = await P.connect(host, node.addr)
        assert str(peer) == node.peer_id
        mem = R.Memory()
        got["fresh"] = await P.pull(host, peer, node.network, mem)
        got["held"], got["refused"] = dict(mem.records), dict(mem.refused)
        # forget a scattered fifth: the next pull must find exactly those, by splits and sketches
        dropped = sorted(mem.records)[::5]
        for rid in dropped:
            del mem.records[rid]
        got["dropped"] = set(dropped)
        got["repair"] = await P.pull(host, peer, node.network, mem)
        got["repaired"] = set(mem.records)
        got["equal"] = await P.pull(host, peer, node.network, mem)

        topic = P.gossip_topic(node.network)
        await pubsub.subscribe(topic)
        await pubsub.wait_for_subscription(peer, topic, timeout=WAIT_S)
        await pubsub.publish(topic, gossiped)
        with trio.fail_after(WAIT_S):  # the node stores it, and serves it back by sync
            while R.check_record(gossiped).id not in mem.records:
                await P.pull(host, peer, node.network, mem)
                await trio.sleep(0.2)

        # publish by sync: hold 30 more records of our own; the node's periodic pulls take them
        mine.records.update(mem.records)
        for raw in synced:
            mine.add(raw)
        with trio.fail_after(WAIT_S):
            while sum(served) < len(synced):
                await trio.sleep(0.2)

        forged = bytearray(hypotheses(me, 1, first_seq=40)[0])
        forged[-1] ^= 1  # the signature's last byte: a bad_signature, and a strike
        await pubsub.publish(topic, bytes(forged))
        with pytest.raises(C.ProtocolError, match="other_network"):
            await P.pull(host, peer, "elsewhere", R.Memory())
        got["blob"] = await P.fetch_blob(host, peer, VALID["sha256"])  # verified no data
        got["malformed"] = await P.send_malformed_sync(host, peer)
        got["after"] = await P.pull(host, peer, node.network, mem)

    trio.run(P.run_with_host, me, body, mine, node.network, served)

    ids = {row[0] for row in node.query("SELECT id FROM records")}
    gossiped_id, synced_ids = R.check_record(gossiped).id, {R.check_record(r).id for r in synced}
    fresh = got["fresh"]
    assert got["refused"] == {}
    assert set(got["held"]) == ids - synced_ids - {gossiped_id}  # every record, each checked
    assert fresh.received == len(got["held"])
    kinds = [r.envelope["kind"] for r in got["held"].values()]
    assert kinds.count("hypothesis") == 340 and "node" in kinds

    repair = got["repair"]
    assert [r[0] for r in repair.requests[0]] == ["s"]  # 341 keys: a fingerprint first
    assert "x" in {r[0] for r in repair.requests[1]}  # sparse differences: sketches
    sketched = [a for q, a in zip(repair.requests[1], repair.answers[1]) if q[0] == "x"]
    assert any(a is not False for a in sketched)  # a sketch fails 0.3-4.3% of the time
    assert got["repaired"] == set(got["held"]) and repair.new == len(got["dropped"])
    assert got["equal"].rounds == 1 and got["equal"].answers == [[True]]

    assert node.query("SELECT kind, author, seq FROM records WHERE id = ?", gossiped_id) == [
        ["hypothesis", me.peer_id, 1]]
    wait_for(lambda: node.query("SELECT count(*) FROM records WHERE author = ?", me.peer_id)
             == [[31]], "the node to store what it pulled from the outsider")

    wait_for(lambda: node.query("SELECT n FROM rejections WHERE reason = 'bad_signature'"),
             "the forged record's rejection")  # counted about once a second
    assert got["blob"] is None  # a --no-work node serves no blob (docs/PROTOCOL.md, "Blobs")
    assert got["malformed"] in ("StreamEOF", "StreamReset", "closed")
    assert got["after"].rounds >= 1  # the node still serves sync after the garbage
    assert node.proc.poll() is None
    peers = {p["peer_id"]: p for p in node.get("/peers")}
    assert peers[me.peer_id]["rejected"] >= 1  # one strike for the malformed frame
    assert node.get("/status")["rejected"]["invalid_from_peers"] >= 1


def test_an_outsider_fetches_a_blob_and_checks_its_hash(tmp_path: Path, monkeypatch) -> None:
    """/swarm/blob/1.0.0 served by swarm's BlobService on a real host holding the track's data
    (a `--no-work` node verifies no data, so it serves none: docs/PROTOCOL.md, "Blobs")."""
    from libp2p import new_host  # the server side is swarm's; the client is the outsider's
    from libp2p.crypto.ed25519 import create_new_key_pair
    import multiaddr

    from node.blob import BlobService
    from node.harness import data as data_mod
    from node.harness.tracks import TRACKS

    monkeypatch.delenv("SWARM_DATA_DIR", raising=False)
    monkeypatch.setattr(data_mod, "_held", {})
    spec = TRACKS["tinystories-cpu"].data
    data_mod.resolve_data(spec, tmp_path / "server")  # the server now holds what it verified
    got: dict[str, Any] = {}

    async def main() -> None:
        server = new_host(key_pair=create_new_key_pair(), muxer_preference="YAMUX")
        async with server.run([multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
            BlobService(server).register()
            addr = f"{server.get_addrs()[0]}"
            if "/p2p/" not in addr:
                addr += f"/p2p/{server.get_id()}"

            async def body(host, _pubsub) -> None:
                peer = await P.connect(host, addr)
                got["valid"] = await P.fetch_blob(host, peer, VALID["sha256"])
                got["unknown"] = await P.fetch_blob(host, peer, "00" * 32)

            with trio.fail_after(WAIT_S):
                await P.run_with_host(R.Identity.fresh(), body)

    trio.run(main)
    assert hashlib.sha256(got["valid"]).hexdigest() == VALID["sha256"] == spec.valid_sha256
    assert len(got["valid"]) == VALID["bytes"] > 262144  # more than one chunk
    assert got["unknown"] is None


def test_sketch_vector_builds_and_peels_as_documented() -> None:
    vectors = json.loads((VECTORS / "sync.json").read_text())
    vec, keys = vectors["sketch_v2"], vectors["reconcile_v2"]
    salt, m = bytes.fromhex(vec["salt_hex"]), vec["cells"]
    s_ids = [int(h, 16) for _, h in keys["s_keys"]]
    r_ids = [int(h, 16) for _, h in keys["r_keys"]]
    assert m == C.sketch_cells(len(s_ids) - len(r_ids))
    r_sketch, s_sketch = C.Sketch.of(r_ids, salt, m), C.Sketch.of(s_ids, salt, m)
    assert r_sketch.wire().hex() == vec["r_sketch_hex"]
    assert s_sketch.wire().hex() == vec["s_sketch_hex"]
    ours, theirs = s_sketch.minus(C.Sketch.from_wire(salt, r_sketch.wire())).peel()
    assert sorted(f"{k:016x}" for k in ours) == vec["s_holds_r_lacks"]
    assert sorted(f"{k:016x}" for k in theirs) == vec["r_holds_s_lacks"]
