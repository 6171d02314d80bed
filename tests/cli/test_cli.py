"""The browsing and memory commands: tables, --json shapes, and one-line errors."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from memory import codec, stream, synthetic
from memory.store import Store
from roles import trust
from node.home import memory_path
from swarm.cli import app
from tests.helpers import BASE, CANDIDATE, bodies, run

runner = CliRunner(env={"COLUMNS": "200"})   # wide enough that table cells do not wrap


def swarm(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def filled(home: Path) -> dict:
    """A home with runs, a verified claim, an assessment and a finding."""
    a, b, c = synthetic.keypairs(3, seed=9)
    runs = [run(a, i + 1, cfg, seed=i, bpb=bpb) for i, (cfg, bpb) in
            enumerate([(BASE, 1.25), (BASE, 1.26), (CANDIDATE, 1.20), (CANDIDATE, 1.21)])]
    claim = codec.sign(a, "claim", 5, bodies(run_id=runs[2].id)["claim"])
    rest = bodies(claim_id=claim.id, run_id=runs[2].id)
    extra = [codec.sign(b, "assessment", 1, rest["assessment"]),
             codec.sign(c, "verification", 1, rest["verification"]),
             codec.sign(b, "finding", 2, rest["finding"])]
    with Store(memory_path(home)) as store:
        store.add(runs + [claim] + extra)
    trust.pin(home, a.peer_id, "test")       # a's runs count here; b's and c's words are advice
    return {"runs": runs, "claim": claim}


def test_leaderboard_table_and_json(filled) -> None:
    code, out, _ = swarm("leaderboard")
    assert code == 0 and "leaderboard" in out and "untrusted" not in out   # both ranked: trusted
    code, out, _ = swarm("leaderboard", "--json")
    rows = json.loads(out)
    assert [r["rank"] for r in rows] == [1, 2]
    # one candidate run cannot pass the gate, whatever b and c testify (docs/TRUST.md)
    assert rows[0]["config"] == CANDIDATE and rows[0]["verified"] is False
    assert rows[0]["trusted"] is True
    assert rows[0]["mean"] == pytest.approx(1.205)
    assert set(rows[0]) >= {"track", "config_hash", "mean", "std", "n", "seeds", "authors", "diff"}


def test_findings_show_findings_then_claims(filled) -> None:
    code, out, _ = swarm("findings")
    assert code == 0 and out.index("findings") < out.index("claims") and "pending" in out
    data = json.loads(swarm("findings", "--json")[1])
    assert data["findings"][0]["title"] == "depth helps"
    # derived here: one candidate run and two baseline runs of non-baseline purpose
    assert data["claims"][0]["status"] == "pending" and data["untrusted_claims"] == []
    assert data["findings"][0]["trusted"] is False and "not trusted here" in out  # b's, marked


def test_a_strangers_newer_finding_does_not_hide_a_trusted_one(filled, home: Path) -> None:
    a, stranger = synthetic.keypairs(1, seed=9)[0], synthetic.keypairs(1, seed=77)[0]
    body = bodies()["finding"]
    mine = codec.sign(a, "finding", 6, body.model_copy(update={"title": "trusted finding"}))
    loud = codec.sign(stranger, "finding", 1, body.model_copy(update={"title": "loud finding"}),
                      ts=mine.ts + 60_000)
    with Store(memory_path(home)) as store:
        store.add([mine, loud])
    data = json.loads(swarm("findings", "--json")[1])
    assert [(f["title"], f["trusted"]) for f in data["findings"]] == [("trusted finding", True)]
    assert "loud finding" not in swarm("findings")[1]


def test_runs_filters(filled) -> None:
    rows = json.loads(swarm("runs", "--json")[1])
    assert len(rows) == 4
    one = json.loads(swarm("runs", "--json", "--config", rows[0]["config_hash"][:8])[1])
    assert len(one) == 2 and all(r["config_hash"] == rows[0]["config_hash"] for r in one)
    assert json.loads(swarm("runs", "--json", "--status", "crash")[1]) == []
    assert swarm("runs")[0] == 0


def test_show_by_prefix_and_bad_ids(filled) -> None:
    claim = filled["claim"]
    code, out, _ = swarm("show", claim.id[:10], "--json")
    shown = json.loads(out)
    assert code == 0 and shown["id"] == claim.id and shown["kind"] == "claim"
    assert shown["claim_status"]["status"] == "verified"
    assert swarm("show", claim.id)[0] == 0
    for bad, message in [("zz-not-hex", "not a record id"), ("abc", "not a record id"),
                         ("ffffffff", "no record")]:
        code, _, err = swarm("show", bad)
        assert code == 1 and message in err and "Traceback" not in err


def test_sql_reads_but_never_writes_or_touches_files(filled, tmp_path) -> None:
    rows = json.loads(swarm("sql", "SELECT kind, count(*) AS n FROM records GROUP BY kind "
                                   "ORDER BY kind", "--json")[1])
    assert {"kind": "run", "n": 4} in rows
    secret = tmp_path / "secret.csv"
    secret.write_text("a\n1\n")
    for query, message in [("DELETE FROM records", "only SELECT"),
                           ("SELECT 1; DROP TABLE runs", "one statement"),
                           ("SELEKT 1", "cannot parse"),
                           ("SELECT * FROM nowhere", "SQL error"),
                           (f"SELECT * FROM read_csv('{secret}')", "SQL error")]:
        code, _, err = swarm("sql", query)
        assert code == 1 and message in err and "Traceback" not in err, query
    assert json.loads(swarm("sql", "SELECT count(*) AS n FROM records", "--json")[1]) == [{"n": 8}]


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_export_writes_every_table(filled, tmp_path, fmt) -> None:
    out = tmp_path / "out"
    code, text, _ = swarm("export", "--format", fmt, "--out", str(out), "--json")
    written = {w["table"]: w["rows"] for w in json.loads(text)}
    assert code == 0 and written["runs"] == 4 and written["leaderboard"] == 2
    assert {"dead_ends", "valid_runs", "role_mix", "rejections"} <= set(written)   # views too
    assert (out / f"runs.{fmt}").exists()
    if fmt == "parquet":
        import pyarrow.parquet as pq
        assert pq.read_table(out / "claim_status.parquet").column("status").to_pylist() == ["verified"]
        # typed as the memory types them, even with no rows (Python rows gave empty tables
        # columns of type null, which pandas and R read as all-missing)
        empty = pq.read_table(out / "judgements.parquet")
        assert empty.num_rows == 0 and str(empty.schema.field("ts").type) == "int64"


def test_memory_export_import_round_trip(filled, tmp_path) -> None:
    file = tmp_path / "all.swarm"
    code, out, _ = swarm("memory", "export", str(file), "--json")
    assert code == 0 and json.loads(out)["records"] == 8
    other = tmp_path / "other-home"
    code, out, _ = swarm("memory", "import", str(file), "--home", str(other), "--json")
    assert json.loads(out) == {"accepted": 8, "duplicate": 0, "rejected": {}}
    code, out, _ = swarm("memory", "import", str(file), "--home", str(other), "--json")
    assert json.loads(out) == {"accepted": 0, "duplicate": 8, "rejected": {}}
    trust.pin(other, filled["runs"][0].author, "test")     # same records + same roots
    ours = json.loads(swarm("leaderboard", "--json")[1])
    theirs = json.loads(swarm("leaderboard", "--json", "--home", str(other))[1])
    assert ours == theirs


def test_memory_import_reports_rejections_by_reason(home, tmp_path) -> None:
    key = synthetic.keypairs(1)[0]
    good = [r.raw for r in synthetic.runs([key], 5)]
    file = tmp_path / "mixed.swarm"
    with open(file, "wb") as f:
        stream.write(f, good + [b"junk", good[0]])
    code, out, _ = swarm("memory", "import", str(file), "--json")
    assert json.loads(out) == {"accepted": 5, "duplicate": 1, "rejected": {"malformed": 1}}
    stats = json.loads(swarm("memory", "stats", "--json")[1])
    assert stats["records"] == 5 and stats["rejected"] == {"malformed": 1}
    assert swarm("memory", "stats")[0] == 0


@pytest.mark.parametrize("damage", ["cut", "huge", "map"])
def test_memory_import_of_a_damaged_stream_keeps_what_came_before_and_says_so(
        home, tmp_path, damage) -> None:
    key = synthetic.keypairs(1)[0]
    good = [r.raw for r in synthetic.runs([key], 5)]
    file = tmp_path / "damaged.swarm"
    with open(file, "wb") as f:
        stream.write(f, good)
    whole = file.read_bytes()
    tail = {"cut": b"", "huge": b"\xc6\x7f\xff\xff\xff" + bytes(2 * stream.MAX_ITEM_BYTES),
            "map": b"\x81\xa1a\x01"}[damage]
    # "cut": the last record loses its last 5 bytes; the others append an item that is no record
    file.write_bytes(whole[:-5] if damage == "cut" else whole + tail)
    code, _, err = swarm("memory", "import", str(file))
    kept = 4 if damage == "cut" else 5
    assert code == 1 and "Traceback" not in err and f"imported: {kept} accepted" in err
    assert len(err.strip().splitlines()) == 1 and "error" in err
    assert json.loads(swarm("memory", "stats", "--json")[1])["records"] == kept


def test_memory_import_refuses_a_file_that_is_not_a_stream(home, tmp_path) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    code, _, err = swarm("memory", "import", str(bad))
    assert code == 1 and "not a swarm record stream" in err and "kept" not in err
    assert not home.exists()                    # refused before the home or its memory was made
    code, _, err = swarm("memory", "import", str(tmp_path / "missing.swarm"))
    assert code == 1 and "no such file" in err


def test_missing_home_is_a_clear_error(tmp_path) -> None:
    for command in (["leaderboard"], ["findings"], ["runs"], ["sql", "SELECT 1"], ["memory", "stats"]):
        code, _, err = swarm(*command, "--home", str(tmp_path / "nope"))
        assert code == 1 and "no swarm home" in err and "Traceback" not in err, command
    (tmp_path / "empty").mkdir()
    code, _, err = swarm("leaderboard", "--home", str(tmp_path / "empty"))
    assert code == 1 and "no memory" in err


def test_a_memory_held_by_another_process_is_a_clear_error(filled, home) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom memory.store import Store\n"
         f"s = Store({str(memory_path(home))!r})\nprint('ready', flush=True)\ntime.sleep(600)"],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2])
    try:
        assert holder.stdout.readline().strip() == "ready"
        code, _, err = swarm("leaderboard")
        assert code == 1 and "held by another process" in err
    finally:
        holder.kill()
        holder.wait()


def test_browsing_does_not_import_torch_or_libp2p() -> None:
    code = ("import sys\nfrom swarm.cli import app\n"
            "print(sorted(m for m in ('torch', 'libp2p', 'trio') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).parents[2])
    assert out.stdout.strip() == "[]", out.stderr


def test_bench_memory_runs_small(tmp_path) -> None:
    code, out, _ = swarm("bench", "memory", "--records", "400", "--repeats", "2", "--json")
    result = json.loads(out)
    assert code == 0 and result["records"] == 400
    assert all(r["converged"] and r["records_sent"] == r["missing_records"] for r in result["repair"])


def test_tables_fit_80_columns_with_short_ids_and_track_names(home) -> None:
    """A newcomer's terminal: no line over 80 columns, 8-char ids, the track's name, not its hash."""
    with Store(memory_path(home)) as store:
        store.add(synthetic.history())
    narrow = CliRunner(env={"COLUMNS": "80"})
    for command in (["leaderboard"], ["runs"], ["findings"], ["runs", "--track", "tinystories-cpu"]):
        result = narrow.invoke(app, command, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        lines = result.stdout.splitlines()
        assert max(map(len, lines)) <= 80, (command, result.stdout)
        assert "tinystories-cpu" in result.stdout and synthetic.HISTORY_TRACK not in result.stdout
    board = json.loads(narrow.invoke(app, ["leaderboard", "--json"]).stdout)
    out = narrow.invoke(app, ["leaderboard"]).stdout
    assert board[0]["config_hash"][:8] in out and board[0]["config_hash"][:9] not in out
    assert "init_scale=2.0" in out and board[0]["diff"] == {"init_scale": 2.0}
    runs = json.loads(narrow.invoke(app, ["runs", "--track", "tinystories-cpu", "--json"]).stdout)
    assert len(runs) == 34 and all(isinstance(r["ts"], int) for r in runs)   # epoch ms
    findings = narrow.invoke(app, ["findings"]).stdout
    assert "depth=6 is within noise" in findings.replace("\n", " ")          # in full


@pytest.mark.parametrize("args", [["join", "--budget-tokens", "-1"], ["join", "--threads", "0"],
                                  ["join", "--max-runs", "0"], ["join", "--lease", "0"],
                                  ["dashboard", "--port", "99999"],
                                  ["leaderboard", "--limit", "-5"], ["runs", "--limit", "0"],
                                  ["bench", "memory", "--records", "0"],
                                  ["bench", "network", "--nodes", "0"],
                                  ["bench", "swarm", "--nodes", "1"], ["bench", "blob", "--rounds", "0"],
                                  ["bench", "dashboard", "--records", "5"],
                                  # past what DuckDB's LIMIT or a track's budget takes: an SQL
                                  # error, a node whose work loop died in a traceback
                                  ["runs", "--limit", "99999999999999999999"],
                                  ["bench", "memory", "--records", "99999999999999999999"],
                                  ["run", "--budget-tokens", str(10**13), "--no-record"],
                                  ["join", "--budget-tokens", str(10**13), "--duration", "1",
                                   "--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns", "--no-dht"]])
def test_out_of_range_options_are_refused_before_anything_starts(home: Path, args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "Invalid value" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not (home / "node.lock").exists() and "Traceback" not in result.output


def test_the_clis_budget_bound_is_the_tracks() -> None:
    from node.harness.tracks import MAX_BUDGET_TOKENS
    from swarm import commands

    assert commands.MAX_BUDGET_TOKENS == MAX_BUDGET_TOKENS


def test_debug_logging_of_help_is_swarms_own(tmp_path: Path) -> None:
    """`swarm -vv join --help` printed ~300 DEBUG lines of markdown-it's rules (rich's help)."""
    done = subprocess.run([sys.executable, "-m", "swarm.cli", "-vv", "join", "--help"],
                          capture_output=True, text=True, timeout=300, cwd=Path(__file__).parents[2])
    assert done.returncode == 0 and "--bootstrap" in done.stdout
    assert "markdown_it" not in done.stderr + done.stdout
