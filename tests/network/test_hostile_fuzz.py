"""A fuzzing peer (swarm/bench/fuzzpeer.py) on every protocol the node speaks, for a bounded time:
afterwards the node is up, its host never restarted, honest records still propagate both ways
between two honest nodes, and the memory is intact."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.network.launcher import STARTED, ids_of, launch_swarm, make_records, wait_for

FUZZ_S = 12
WAIT_S = 120            # generous: a loaded 2-core machine; each wait ends when its condition holds


def test_a_fuzzing_peer_costs_streams_never_the_node(tmp_path: Path, network: str) -> None:
    a, b = launch_swarm(tmp_path, 2, network)
    before = make_records(5)
    a.ingest(before)
    wait_for(lambda: b.has_all(ids_of(before)), WAIT_S, "honest records on b before the fuzz")
    held = a.record_ids()
    fuzzer = subprocess.Popen(
        [sys.executable, "-m", "swarm.bench.fuzzpeer", a.addr, "--seconds", str(FUZZ_S),
         "--network", network, "--seed", "9"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    STARTED.append(fuzzer)
    out, err = fuzzer.communicate(timeout=FUZZ_S + 120)
    report = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
    print(json.dumps(report))
    assert report.get("frames", 0) > 20, err[-2000:]
    assert {"/meshsub/1.1.0", "/ipfs/kad/1.0.0", "/ipfs/id/push/1.0.0"} <= set(report["by_protocol"])
    assert a.proc.poll() is None and a.status()["host_restarts"] == 0
    after_a, after_b = make_records(5), make_records(5)
    a.ingest(after_a)
    b.ingest(after_b)
    everything = ids_of(before + after_a + after_b)
    wait_for(lambda: a.has_all(everything) and b.has_all(everything), WAIT_S,
             "honest records after")
    assert held <= a.record_ids()                                 # nothing lost
    fuzz = a.query("SELECT count(*) FROM hypotheses WHERE track = 'fuzz'")["rows"][0][0]
    assert fuzz == 0                        # its records came with forged pubsub signatures
    wait_for(lambda: a.status()["digest"] == b.status()["digest"], WAIT_S, "identical memories")
