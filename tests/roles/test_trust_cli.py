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
from swarm.node_work import bootstrap_peers

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
