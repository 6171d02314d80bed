"""Every JSON view of the dashboard through Starlette's TestClient, against a real memory."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from memory import synthetic
from memory.store import ReadOnlyMemory, Store
from node.home import memory_path
from swarm.web.app import dashboard_app
from tests.web.conftest import cli_json


@pytest.fixture
def client(history_home: Path):
    memory = ReadOnlyMemory(memory_path(history_home))
    with TestClient(dashboard_app(memory), base_url="http://127.0.0.1") as test_client:
        yield test_client
    memory.close()


def test_overview_shows_the_verified_best_over_time(client: TestClient) -> None:
    data = client.get("/json/overview").json()
    assert data["track"] == synthetic.HISTORY_TRACK
    assert [step["what"] for step in data["best"]] == ["baseline", "init_scale=2.0"]
    assert data["best"][1]["val_bpb"] < data["best"][0]["val_bpb"]
    assert data["counts"]["claims"] == {"verified": 1, "not_supported": 1}
    assert {m["purpose"] for m in data["marks"]} >= {"baseline", "screen", "confirm", "verify"}
    assert len(data["peers"]) == 3 and sum(r["runs"] for r in data["runs_per_hour"]) == len(
        [m for m in data["marks"]])
    assert {r["role"] for r in data["role_mix"]} >= {"experimenter", "verifier"}
    assert client.get("/json/overview", params={"track": "tinystories-cpu"}).json() == data


def test_leaderboard_rows_are_the_clis(client: TestClient) -> None:
    data = client.get("/json/leaderboard").json()
    assert data["rows"] == cli_json("leaderboard")
    assert data["rows"][0]["diff"] == {"init_scale": 2.0} and data["rows"][0]["verified"]
    per_config = {}
    for seed in data["seeds"]:
        per_config.setdefault(seed["config_hash"], []).append(seed["val_bpb"])
    assert {h: len(v) for h, v in per_config.items()} == {r["config_hash"]: r["n"] for r in data["rows"]}
    assert data["baseline"]["n"] == 16


def test_claim_page_explains_its_status(client: TestClient) -> None:
    claims = cli_json("findings")["claims"]
    for claim in claims:
        data = client.get(f"/json/claims/{claim['claim']}").json()
        assert data["claim"]["status"] == claim["status"]
        assert data["claim"]["p_value"] == claim["p_value"]
        assert {r["side"] for r in data["evidence"]} == {"baseline", "candidate"}
        assert data["assessments"] and data["why"]
        if claim["status"] == "verified":
            assert data["verifications"][0]["replay_match"] is True
            assert data["effect_in_sd"] < -1
    assert client.get("/json/claims/" + "0" * 64).status_code == 404


def test_knobs_runs_and_a_run_without_a_curve(client: TestClient) -> None:
    knobs = client.get("/json/knobs").json()
    assert {e["knob"] for e in knobs["effects"]} == {"init_scale", "depth", "lr", "activation", "width"}
    assert all(e["lo"] < e["effect"] < e["hi"] for e in knobs["effects"])
    assert knobs["never_tried"] == []
    runs = client.get("/json/runs", params={"purpose": "verify"}).json()["runs"]
    assert len(runs) == 2 and all(r["diff"] == {"init_scale": 2.0} for r in runs)
    cli_runs = cli_json("runs", "--limit", "500")
    assert {r["id"] for r in client.get("/json/runs").json()["runs"]} == {r["id"] for r in cli_runs}
    run = client.get(f"/json/runs/{runs[0]['id']}").json()
    assert run["body"]["purpose"] == "verify" and not run["curve"]   # no curve points
    assert client.get("/json/runs/" + "0" * 64).status_code == 404


def test_pages_are_shells_that_load_only_local_assets(client: TestClient) -> None:
    for path in ["/", "/leaderboard", "/knobs", "/runs", "/runs/abc", "/claims/abc"]:
        page = client.get(path)
        assert page.status_code == 200 and "swarmDashboard.start()" in page.text
        assert "http" not in page.text.replace("http://127.0.0.1", "")
    for asset in ["app.js", "app.css", "vendor/vega.min.js", "vendor/LICENSE.vega-lite"]:
        assert client.get(f"/static/{asset}").status_code == 200


def test_live_events_announce_new_records(tmp_path: Path) -> None:
    import uvicorn

    store = Store(tmp_path / "m.duckdb", helpers=0)
    store.add(synthetic.history()[:5])
    config = uvicorn.Config(dashboard_app(store), port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    counts = []
    with httpx.stream("GET", f"http://127.0.0.1:{port}/events", timeout=30) as events:
        for line in events.iter_lines():
            if line.startswith("data:"):
                counts.append(int(line.split('"records": ')[1].rstrip("}")))
                if len(counts) == 1:
                    store.add(synthetic.history()[5:8])
                else:
                    break
    assert counts == [5, 8]
    server.should_exit = True
    thread.join(10)
    store.close()
