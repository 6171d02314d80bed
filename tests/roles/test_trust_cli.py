"""`swarm trust`: pin and unpin keys in the home; the listing says who counts here and why."""
from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from memory import codec, synthetic
from memory.store import Store
from node.home import memory_path
from roles import trust
from swarm.cli import app
from swarm.conclusions import Conclusions
from swarm.node_work import bootstrap_peers
from swarm.reader import open_reader
from swarm.web import views

cli = CliRunner(env={"COLUMNS": "120"})
CONFIG = {"lr": 0.003}


def swarm(*args: str) -> tuple[int, str, str]:
    result = cli.invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_trust_add_list_remove(home: Path) -> None:
    me, honest, liar, stranger = synthetic.keypairs(4, seed=5)
    home.mkdir(parents=True)
    (home / "identity.key").write_text(me.seed.hex() + "\n")
    (home / "identity.key").chmod(0o600)
    good = codec.sign(honest, "run", 1, synthetic.run_body("t", CONFIG, 1, 1.0, purpose="baseline"))
    fake = codec.sign(liar, "run", 1, synthetic.run_body("t", CONFIG, 2, 0.5, purpose="baseline"))
    replays = [codec.sign(me, "run", 1, synthetic.run_body("t", CONFIG, 1, 1.0, "ok", "replay",
                                                          good.id)),
               codec.sign(me, "run", 2, synthetic.run_body("t", CONFIG, 2, 1.01, "ok", "replay",
                                                          fake.id)),
               codec.sign(stranger, "run", 1, synthetic.run_body("t", CONFIG, 9, 1.0))]
    with Store(memory_path(home)) as store:
        store.add([good, fake, *replays])
    rows = {r["author"]: r for r in json.loads(swarm("trust", "--json")[1])}
    assert rows[me.peer_id]["status"] == "root"
    assert rows[honest.peer_id]["status"] == "trusted" and rows[honest.peer_id]["vouchers"] == [me.peer_id]
    assert rows[liar.peer_id]["status"] == "distrusted"
    assert rows[liar.peer_id]["contradicted"] == [fake.id]
    assert rows[stranger.peer_id]["status"] == "untrusted"
    assert swarm("trust", "add", stranger.peer_id, "--note", "my laptop")[0] == 0
    rows = {r["author"]: r for r in json.loads(swarm("trust", "--json")[1])}
    assert rows[stranger.peer_id]["status"] == "root"
    assert rows[stranger.peer_id]["pinned"] == {"note": "my laptop", "source": "user"}
    code, out, _ = swarm("trust")
    assert code == 0 and "distrusted" in out and "(pin)" in out
    assert swarm("trust", "remove", stranger.peer_id)[0] == 0
    code, _, err = swarm("trust", "remove", stranger.peer_id)
    assert code == 1 and "not pinned" in err
    code, _, err = swarm("trust", "add", "not-a-peer")
    assert code == 1 and "not an Ed25519 peer id" in err
    assert trust.load_pins(home) == {}


def test_bootstrap_peer_ids_are_read_from_multiaddrs() -> None:
    peer = synthetic.keypairs(1)[0].peer_id
    assert bootstrap_peers([f"/ip4/1.2.3.4/tcp/4001/p2p/{peer}", "/ip4/1.2.3.4/tcp/1"]) == [peer]


def test_join_without_work_pins_its_trust_and_bootstrap_peers(home: Path) -> None:
    # `--trust` and a first join's `--bootstrap` peers were pinned by the work loop only: a
    # `--no-work` node (a relay, a monitor) dropped `--trust` silently, and a bad key unsaid.
    pinned, through = synthetic.keypairs(2, seed=8)
    node = ["join", "--no-work", "--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns", "--no-dht",
            "--duration", "1"]
    code, _, err = swarm(*node, "--trust", "notakey")
    assert code == 1 and "not an Ed25519 peer id" in err and not home.exists()
    boot = f"/ip4/127.0.0.1/tcp/9/p2p/{through.peer_id}"       # nothing listens there
    code, _, err = swarm(*node, "--trust", pinned.peer_id, "--bootstrap", boot)
    assert code == 0, err
    pins = trust.load_pins(home)
    assert {p: pins[p]["source"] for p in pins} == {pinned.peer_id: "join",
                                                  through.peer_id: "bootstrap"}


def test_a_flood_of_keys_is_a_long_tail_after_the_roots(home: Path) -> None:
    # Keys are free: 60 strangers with one run each must not bury the roots and trusted authors,
    # nor make the listing (or the dashboard's trust page) as long as the flood.
    me, *flood = synthetic.keypairs(61, seed=7)
    home.mkdir(parents=True)
    (home / "identity.key").write_text(me.seed.hex() + "\n")
    (home / "identity.key").chmod(0o600)
    mine = [codec.sign(me, "run", i + 1,
                       synthetic.run_body("t", CONFIG, i, 1.0, purpose="baseline"))
            for i in range(2)]
    theirs = [codec.sign(k, "run", 1, synthetic.run_body("t", CONFIG, 100 + i, 1.0))
              for i, k in enumerate(flood)]
    with Store(memory_path(home)) as store:
        store.add([*mine, *theirs])
    rows = json.loads(swarm("trust", "--json", "--limit", "5")[1])
    assert len(rows) == 5 and rows[0]["author"] == me.peer_id and rows[0]["status"] == "root"
    code, out, err = swarm("trust")
    assert code == 0 and "the first 50 of 61 authors" in err
    with open_reader(home) as reader:
        page = views.trust(Conclusions(reader, home))
    assert page["total"] == 61 and page["authors"][0]["author"] == me.peer_id
