"""A newcomer's view of the CLI: damaged homes, stale daemon files, and tables at 80 columns.

Every failure is one line with a non-zero exit code, and a command that fails changes nothing.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from memory import stream, synthetic
from memory.store import Store
from node.home import API_FILE, IDENTITY_FILE, TOKEN_FILE, memory_path
from roles import trust
from swarm.cli import app
from tests.smalldisk import on_read_only, python

runner = CliRunner(env={"COLUMNS": "80"})
PEER = synthetic.keypairs(1, seed=5)[0].peer_id


def swarm(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def one_line_error(code: int, err: str, words: str) -> bool:
    """A failure as the project wants it: exit code 1, one line naming the problem."""
    return code == 1 and words in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.fixture
def stored(home: Path) -> Path:
    """A home holding a few runs (no key, no daemon)."""
    with Store(memory_path(home)) as store:
        store.add(synthetic.runs(synthetic.keypairs(2), 6))
    return home


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_trust_add_through_the_groups_home_pins_there(home: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    assert swarm("trust", "--home", str(other), "add", PEER)[0] == 0
    assert PEER in trust.load_pins(other) and not home.exists()    # not the default home
    assert swarm("trust", "--home", str(other), "remove", PEER)[0] == 0
    assert trust.load_pins(other) == {}


def test_trust_add_keeps_an_unreadable_trust_file(home: Path) -> None:
    home.mkdir()
    (home / trust.TRUST_FILE).write_text('{"pinned": {"12D3KooW...": {},}}')    # a hand edit
    code, _, err = swarm("trust", "add", PEER)
    assert one_line_error(code, err, "trust.json")
    assert (home / trust.TRUST_FILE).read_text().endswith(",}}")
    code, _, err = swarm("join", "--trust", PEER, "--listen", "/ip4/127.0.0.1/tcp/0", "--duration", "1")
    assert one_line_error(code, err, "trust.json") and not (home / "memory.duckdb").exists()
    assert (home / trust.TRUST_FILE).read_text().endswith(",}}")
    code, _, err = swarm("trust", "add", "notakey")      # base58, but no key: said once
    assert one_line_error(code, err, "not an Ed25519 peer id: 'notakey'") and "(" not in err


def test_status_never_creates_a_key_and_shows_the_whole_peer_id(stored: Path) -> None:
    from node.identity import load_or_create

    code, out, _ = swarm("status", "--json")
    assert code == 0 and json.loads(out)["peer_id"] is None
    assert "none yet" in swarm("status")[1] and not (stored / IDENTITY_FILE).exists()
    peer = load_or_create(stored).peer_id
    code, out, _ = swarm("status")
    assert code == 0 and peer in out and max(map(len, out.splitlines())) <= 80


def test_an_unusable_key_is_one_line_everywhere(stored: Path) -> None:
    key = stored / IDENTITY_FILE
    key.write_text("not hex\n")
    key.chmod(0o600)
    for command in (["status"], ["leaderboard"], ["trust"], ["findings"]):
        code, _, err = swarm(*command)
        assert one_line_error(code, err, "does not hold a 32-byte hex key"), command
    code, _, err = swarm("join", "--no-work", "--listen", "/ip4/127.0.0.1/tcp/0", "--duration", "1")
    assert one_line_error(code, err, "does not hold a 32-byte hex key")
    assert key.read_text() == "not hex\n"


@pytest.mark.parametrize("api", [{"pid": "x", "url": "http://127.0.0.1:1"}, {"pid": os.getpid()},
                                 {"pid": 0, "url": "http://127.0.0.1:1"}, ["not", "a", "dict"]])
def test_a_malformed_api_file_is_browsed_past(stored: Path, api: object) -> None:
    (stored / API_FILE).write_text(json.dumps(api))
    (stored / TOKEN_FILE).write_text("token")
    code, out, _ = swarm("runs", "--json")
    assert code == 0 and len(json.loads(out)) == 6


def test_an_unreachable_daemon_is_one_line_and_writes_nothing(stored: Path, tmp_path: Path) -> None:
    (stored / API_FILE).write_text(json.dumps({"pid": os.getpid(),
                                               "url": f"http://127.0.0.1:{_closed_port()}"}))
    (stored / TOKEN_FILE).write_text("token")
    for command in (["memory", "stats"], ["runs"], ["export", "--format", "csv", "--out",
                                                    str(tmp_path / "out")]):
        code, _, err = swarm(*command)
        assert one_line_error(code, err, "cannot reach the daemon"), command
    assert not (tmp_path / "out").exists()


def test_status_of_a_node_that_runs_but_does_not_answer(stored: Path) -> None:
    """A node whose local API does not answer (hung, or in another network namespace) read
    `running no` while `swarm join` on its home was refused because it runs. Its pid, alive and
    named by both api.json and daemon.lock, says it runs; a pid in api.json alone (a dead node's,
    taken by another process) does not."""
    (stored / API_FILE).write_text(json.dumps({"pid": os.getpid(),
                                               "url": f"http://127.0.0.1:{_closed_port()}"}))
    (stored / TOKEN_FILE).write_text("token")
    (stored / "daemon.lock").write_text(str(os.getpid()))
    code, out, _ = swarm("status", "--json")
    info = json.loads(out)
    assert code == 0 and info["running"] is True and info["pid"] == os.getpid()
    assert info["api"].startswith("not answering: cannot reach the daemon at http://127.0.0.1:")
    code, out, _ = swarm("status")
    assert code == 0 and "│ running" in out and "yes" in out and "not answering" in out
    (stored / "daemon.lock").write_text("1")
    code, out, _ = swarm("status", "--json")
    assert code == 0 and json.loads(out)["running"] is False and "api" not in json.loads(out)


def test_peers_reads_past_a_damaged_peers_file(stored: Path, tmp_path: Path) -> None:
    for text in ("{}", '["a", 3]', "not json"):
        (stored / "peers.json").write_text(text)
        code, out, _ = swarm("peers", "--json")
        assert code == 0 and json.loads(out) == [], text
    code, _, err = swarm("peers", "--home", str(tmp_path / "nowhere"))
    assert one_line_error(code, err, "no node home")


def test_tracks_fit_80_columns_with_their_full_ids() -> None:
    from node.harness.tracks import TRACKS

    code, out, _ = swarm("tracks")
    assert code == 0 and max(map(len, out.splitlines())) <= 80
    assert TRACKS["tinystories-cpu"].id in out and "2.5M" in out


def test_report_of_an_unknown_track_writes_nothing(stored: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    code, _, err = swarm("report", "--out", str(out), "--track", "no-such-track")
    assert one_line_error(code, err, "no runs of track 'no-such-track'") and not out.exists()


def test_memory_export_refuses_an_unknown_kind(stored: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.swarm"
    code, _, err = swarm("memory", "export", str(out), "--kind", "runz")
    assert one_line_error(code, err, "--kind must be one of") and not out.exists()


def test_help_text_is_reflowed_for_the_terminal() -> None:
    out = runner.invoke(app, ["leaderboard", "--help"]).stdout
    assert "unranked (docs/TRUST.md)" in out          # one sentence, not the docstring's lines
    summary = runner.invoke(app, ["--help"]).stdout
    assert "Configs ranked by mean val_bpb over seeds, per track" in summary


def test_manual_runs_are_diffed_against_the_built_in_base(home: Path) -> None:
    """`swarm run --set lr=...` twice, no baseline run yet: the leaderboard still says what changed."""
    from memory import codec
    from node.harness.tracks import TRACKS

    key = synthetic.keypairs(1, seed=3)[0]
    base = TRACKS["tinystories-cpu"].base.model_dump()
    track = "tinystories-cpu:" + "7" * 32                    # another budget: another id, same base
    bodies = [synthetic.run_body(track, base, 0, 2.33),
              synthetic.run_body(track, {**base, "lr": 0.001}, 1, 2.58)]
    with Store(memory_path(home)) as store:
        store.add([codec.sign(key, "run", i + 1, b) for i, b in enumerate(bodies)])
    rows = json.loads(swarm("leaderboard", "--json")[1])
    assert [r["diff"] for r in rows] == [{}, {"lr": 0.001}]
    assert "lr=0.001" in swarm("leaderboard")[1]


def test_a_narrow_tables_title_stays_on_one_line(stored: Path) -> None:
    code, out, _ = swarm("sql", "SELECT 1 AS n")
    assert code == 0 and out.splitlines()[0].strip() == "1 row"


def test_run_and_join_check_their_home_first(tmp_path: Path) -> None:
    """A home that cannot hold a memory stops `swarm run` before training and `swarm join` at once."""
    not_a_folder = tmp_path / "home-file"
    not_a_folder.write_text("x")
    code, _, err = swarm("run", "--home", str(not_a_folder), "--budget-tokens", "1000")
    assert one_line_error(code, err, "is not a folder")
    code, _, err = swarm("join", "--home", str(not_a_folder), "--no-work", "--duration", "1")
    assert one_line_error(code, err, "is not a folder") and not_a_folder.read_text() == "x"
    bad_key = tmp_path / "home"
    bad_key.mkdir()
    (bad_key / IDENTITY_FILE).write_text("zz\n")
    (bad_key / IDENTITY_FILE).chmod(0o600)
    code, _, err = swarm("run", "--home", str(bad_key), "--budget-tokens", "1000")
    assert one_line_error(code, err, "does not hold a 32-byte hex key")
    assert not (bad_key / "memory.duckdb").exists() and not (bad_key / "cache").exists()


def test_run_checks_its_memory_file_before_training(tmp_path: Path) -> None:
    """A home whose memory.duckdb is not a DuckDB file stops `swarm run` before it trains, as it
    stops `swarm join` (it trained the whole run, then said it could not record it)."""
    home = tmp_path / "home"
    home.mkdir()
    damaged = bytes(range(256)) * 40
    memory_path(home).write_bytes(damaged)
    code, out, err = swarm("run", "--home", str(home), "--budget-tokens", "1000")
    assert one_line_error(code, err, "is not a swarm memory") and out == ""
    assert memory_path(home).read_bytes() == damaged
    assert sorted(p.name for p in home.iterdir()) == ["memory.duckdb"]     # no cache, no key


def test_run_on_a_read_only_home_stops_before_training(stored: Path) -> None:
    """A home on a read-only disk: `swarm run` trained the whole run (no checkpoint, a warning)
    and only then failed to record it; it stops at once, in one line."""
    from node.harness.prepare import prepare
    from node.harness.tracks import get_track

    prepare(get_track("tinystories-cpu"), stored)     # a home used before: its data cached,
    (stored / "checkpoints").mkdir()                   # its checkpoints' folder made
    before = sorted(p.name for p in stored.iterdir())
    done = on_read_only(stored, python("from swarm.cli import main; main()", "run", "--home",
                                       str(stored), "--budget-tokens", "1000"))
    assert done.returncode == 1 and done.stdout == "", done.stderr
    assert done.stderr == f"error: cannot use {stored}: Read-only file system (or pass --no-record)\n"
    assert sorted(p.name for p in stored.iterdir()) == before


def test_join_on_a_read_only_home_names_the_path_in_words(stored: Path) -> None:
    """`swarm join` on a read-only disk said `[Errno 30] Read-only file system: '.../daemon.lock'`."""
    before = sorted(p.name for p in stored.iterdir())
    done = on_read_only(stored, python("from swarm.cli import main; main()", "join", "--home",
                                       str(stored), "--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns",
                                       "--no-dht", "--no-work", "--duration", "1"), timeout=120)
    assert done.returncode == 1 and done.stdout == "", done.stderr
    assert done.stderr == (f"error: cannot start the node: {stored / 'daemon.lock'}: "
                           "Read-only file system\n")
    assert sorted(p.name for p in stored.iterdir()) == before


def test_ctrl_c_in_memory_import_says_what_it_kept(tmp_path: Path) -> None:
    """Ctrl-C in `swarm memory import` exited 130 with an empty line: nothing said of the batches
    it had committed. One line now, with the counts the memory holds."""
    records, home = tmp_path / "all.swarm", tmp_path / "home"
    with open(records, "wb") as out:
        stream.write(out, (r.raw for r in synthetic.runs(synthetic.keypairs(3), 20_000)))
    proc = subprocess.Popen(python("from swarm.cli import main; main()", "memory", "import",
                                   str(records), "--home", str(home)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    wal = memory_path(home).with_name("memory.duckdb.wal")
    deadline = time.monotonic() + 120       # a committed batch of 2,000 runs: ~3 MB of log
    while proc.poll() is None and time.monotonic() < deadline:
        if wal.exists() and wal.stat().st_size > 1_000_000:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)        # what Ctrl-C sends (to the group: helpers ignore it)
    out, err = proc.communicate(timeout=120)
    kept = re.fullmatch(r"error: interrupted: (\d+) accepted, 0 duplicate, 0 rejected before "
                        r"the stop, kept; the same command imports the rest \(what is held "
                        r"already counts as duplicate\)\n", err)
    assert proc.returncode == 130 and out == "" and kept, err
    with Store(memory_path(home)) as store:
        held = store.query("SELECT count(*) FROM records").rows[0][0]
    assert held == int(kept.group(1)) and 0 < held < 20_000


def _holds_open(pid: int, path: Path) -> bool:
    """Whether process `pid` has `path` open (Linux /proc)."""
    with contextlib.suppress(OSError):
        return any(os.readlink(fd) == str(path) for fd in Path(f"/proc/{pid}/fd").iterdir())
    return False


def test_ctrl_c_stops_a_long_query_at_once_in_one_line(stored: Path) -> None:
    """Ctrl-C in `swarm sql` on a home without a daemon went unnoticed until the query's time
    limit (120 s by default), then ended in a "Query interrupted" traceback."""
    query = "SELECT sum(a.range * b.range) FROM range(100000000) a, range(100000) b"
    proc = subprocess.Popen(python("from swarm.cli import main; main()", "sql", query,
                                   "--query-timeout", "60", "--home", str(stored)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while not _holds_open(proc.pid, memory_path(stored)) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert (proc.returncode, out, err) == (130, "", "error: interrupted\n")


def test_bench_trust_refuses_an_unknown_attack() -> None:
    code, _, err = swarm("bench", "trust", "--scenario", "bribe")
    assert one_line_error(code, err, "--scenario must be one of fabricate")


def test_writing_under_a_file_is_one_line(stored: Path, tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    for command in (["export", "--format", "csv", "--out", str(a_file / "out")],
                    ["memory", "export", str(a_file / "all.swarm")],
                    ["report", "--out", str(a_file / "report.html")]):
        code, _, err = swarm(*command)
        assert one_line_error(code, err, "Not a directory"), command
    assert a_file.read_text() == "x"


def _nodes_of(pid: int) -> list[int]:
    """The `swarm join` processes whose parent is `pid` (a bench starts them in their own sessions)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            joins = b"join" in (proc / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if parent == pid and joins:
            found.append(int(proc.name))
    return found


@pytest.mark.timeout(300)
def test_a_terminated_bench_stops_the_nodes_it_started(tmp_path: Path) -> None:
    """`timeout 60 swarm bench network` (SIGTERM) once left its node processes running for good."""
    import signal
    import subprocess
    import sys
    import time

    from swarm.bench.nodes import wait_for

    bench = subprocess.Popen([sys.executable, "-m", "swarm.cli", "bench", "network", "--nodes", "2",
                              "--seconds", "600", "--catch-up", "0"], cwd=tmp_path,
                             env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    nodes: list[int] = []
    try:
        nodes = wait_for(lambda: c if len(c := _nodes_of(bench.pid)) == 2 else None, 240,
                         "the bench's two nodes")
        time.sleep(1)
        bench.send_signal(signal.SIGTERM)
        assert bench.wait(120) != 0
        wait_for(lambda: not any(Path(f"/proc/{n}").exists() for n in nodes), 60, "nodes gone")
    finally:
        bench.kill()
        bench.wait()
        for node in nodes:                    # a failure here must not leave them running
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node, signal.SIGKILL)


def test_kill_all_kills_every_node_before_it_waits_for_any() -> None:
    """A node that outlived its kill (here: one not leading its own process group) made the first
    wait raise, and the nodes after it were left running, orphaned."""
    import signal
    import subprocess

    from swarm.bench import nodes

    stubborn = subprocess.Popen(["sleep", "600"])          # killpg finds no group of its pid
    others = [subprocess.Popen(["sleep", "600"], start_new_session=True) for _ in range(2)]
    kept, nodes.STARTED[:] = list(nodes.STARTED), [stubborn, *others]   # others' nodes: untouched
    try:
        nodes.kill_all()
        assert [p.poll() for p in others] == [-signal.SIGKILL] * 2 and not nodes.STARTED
    finally:
        nodes.STARTED[:] = kept
        for proc in (stubborn, *others):
            proc.kill()
            proc.wait()


def test_a_bench_run_in_process_leaves_sigterm_as_it_was() -> None:
    import signal

    before = signal.getsignal(signal.SIGTERM)
    code, _, err = swarm("bench", "trust", "--scenario", "bribe")
    assert code == 1 and signal.getsignal(signal.SIGTERM) is before


@pytest.mark.parametrize("content", [b"", b"not a database at all\n" * 100])
def test_join_on_a_memory_file_that_is_no_database_fails_first_creating_nothing(
        tmp_path: Path, content: bytes) -> None:
    home = tmp_path / "home"
    home.mkdir()
    memory_path(home).write_bytes(content)
    code, _, err = swarm("join", "--home", str(home), "--no-work",
                         "--listen", "/ip4/127.0.0.1/tcp/0", "--duration", "1")
    assert one_line_error(code, err, "is not a swarm memory (not a DuckDB database file)")
    assert sorted(p.name for p in home.iterdir()) == ["memory.duckdb"]
    assert memory_path(home).read_bytes() == content


def damage(path: Path) -> bytes:
    """Flip bytes in the memory file's first data block, as a bad disk block or a cut copy does
    (the DuckDB header stays: the file still reads as a DuckDB database); its bytes after."""
    with path.open("r+b") as handle:
        handle.seek(12288 + 200)
        handle.write(b"\xff" * 64)
    return path.read_bytes()


@pytest.mark.parametrize("command", [["runs"], ["findings"], ["leaderboard"], ["show", "abcd"],
                                     ["memory", "stats"], ["sql", "SELECT 1"], ["dashboard"],
                                     ["export", "--format", "csv", "--out", "OUT"],
                                     ["report", "--out", "OUT"],
                                     ["join", "--no-work", "--no-mdns", "--listen",
                                      "/ip4/127.0.0.1/tcp/0", "--duration", "1"]])
def test_a_damaged_memory_is_one_line_and_left_as_it_is(stored: Path, tmp_path: Path,
                                                        command: list[str]) -> None:
    """A memory file with a damaged block ended every command that opened it (and `swarm join`)
    in a traceback: `_duckdb.Error: Corrupt database file: computed checksum ...`."""
    before = damage(memory_path(stored))
    out = tmp_path / "out"
    code, _, err = swarm(*[str(out) if a == "OUT" else a for a in command])
    assert one_line_error(code, err, f"{memory_path(stored)} is damaged"), err
    assert "move it away" in err and memory_path(stored).read_bytes() == before
    assert not out.exists()


def test_status_of_a_stopped_node_says_what_its_home_holds(stored: Path) -> None:
    """After a Ctrl-C, `swarm status` said `running no` and the home's path, nothing of the
    records it holds or the run it left to resume."""
    mark_pending(stored)
    (stored / "checkpoints" / "junk.json").write_text("{not json")     # no run to resume
    code, out, _ = swarm("status", "--json")
    info = json.loads(out)
    assert code == 0 and info["running"] is False
    assert info["records"] == 6 and info["pending_runs"] == 1
    code, out, _ = swarm("status")
    assert re.search(r"│ records +│ 6 ", out) and re.search(r"│ runs to resume +│ 1 ", out), out
    damage(memory_path(stored))
    code, out, _ = swarm("status")             # the rest of the status, and why no count
    assert code == 0 and "unreadable" in out and "runs to resume" in out


def mark_pending(home: Path) -> None:
    """A run of the built-in track noted as started in `home` (what a stopped node leaves)."""
    from node.harness.tracks import TRACKS
    from roles import pending

    track = TRACKS["tinystories-cpu"]
    pending.mark(home, pending.Pending(track.id, track.base.model_dump(), 7, "baseline", None,
                                       None))


def test_a_node_stopped_with_a_run_to_resume_says_so(stored: Path) -> None:
    """`swarm join`'s last line said `node stopped: 0 runs by this node; ...` after a Ctrl-C
    mid-run, nothing of the run it saved, as if its training were lost."""
    mark_pending(stored)
    done = subprocess.run([sys.executable, "-m", "swarm.cli", "join", "--no-work", "--no-mdns",
                           "--listen", "/ip4/127.0.0.1/tcp/0", "--duration", "1"],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "SWARM_HOME": str(stored), "COLUMNS": "80"})
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last == ("node stopped; 1 run saved to resume (swarm pending): the next swarm join "
                    "resumes it"), done.stdout


def test_memory_stats_reads_its_numbers_for_people(stored: Path) -> None:
    """`swarm memory stats` printed `file bytes 3682304`, read digit by digit: counts and sizes
    have thousands separators, a size past a MiB says so (--json keeps the numbers)."""
    info = json.loads(swarm("memory", "stats", "--json")[1])
    code, out, _ = swarm("memory", "stats")
    cells = {ln.split("│")[1].strip(): ln.split("│")[2].strip() for ln in out.splitlines()
             if ln.startswith("│")}
    size = info["file_bytes"]
    assert code == 0 and isinstance(size, int) and size >= 2**20
    assert cells["file bytes"] == f"{size:,} ({size / 2**20:.1f} MiB)"
    assert cells["record bytes"] == f"{info['record_bytes']:,}" and "," in cells["record bytes"]
