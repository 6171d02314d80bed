"""The CLI as a newcomer meets it, following the docs: help, usage errors, keys, wide tables, JSON.

Round 2 of the documentation audit: each test is a defect a new user hit by running what README.md
and docs/ show. Every failure is one line; a command that fails changes nothing.
"""
from __future__ import annotations

import io
import json
import math
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from memory import synthetic
from memory.store import Store
from node.home import memory_path
from swarm.cli import app

runner = CliRunner(env={"COLUMNS": "80"})
KEYS = synthetic.keypairs(2, seed=11)


def swarm(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def fits(out: str) -> bool:
    return max(map(len, out.splitlines()), default=0) <= 80


@pytest.fixture
def stored(home: Path) -> Path:
    """A home holding a few runs by two keys."""
    with Store(memory_path(home)) as store:
        store.add(synthetic.runs(KEYS, 6))
    return home


@pytest.mark.parametrize("group", [[], ["bench"], ["memory"], ["-v"]])
def test_a_group_without_a_command_prints_its_help_and_exits_0(group: list[str]) -> None:
    code, out, err = swarm(*group)
    listed = "Take part" if group in ([], ["-v"]) else "Commands"     # the root's headings
    assert code == 0 and "Usage:" in out and listed in out and err == ""


@pytest.mark.parametrize("args, words", [
    (["runs", "--limit", "0"], "Invalid value for '--limit'"),
    (["runs", "--status", "bogus"], "'bogus' is not one of"),
    (["export", "--format", "xls", "--out", "x"], "Invalid value for '--format'"),
    (["nosuch"], "No such command 'nosuch'"),
    (["show"], "Missing argument"),
    (["tracks", "extra"], "unexpected extra argument"),
])
def test_a_usage_error_is_one_line_naming_the_help(args: list[str], words: str) -> None:
    code, out, err = swarm(*args)
    assert code == 2 and out == "" and words in err and len(err.strip().splitlines()) == 1
    assert err.startswith("error: ") and "--help)" in err and "╭" not in err


def test_flags_show_no_value_type_in_help() -> None:
    """typer >= 0.2x wrote `--json <bool>`: it reads as if the flag took a value."""
    for args in (["--help"], ["runs", "--help"], ["run", "--help"], ["bench", "harness", "--help"]):
        out = swarm(*args)[1]
        assert "<bool>" not in out and "--help" in out and fits(out), args
    assert "<int> [x>=1]" in swarm("runs", "--help")[1]       # options that take one keep it
    harness = swarm("bench", "harness", "--help")[1]
    assert "--seed-budget-tokens" in harness and "--synthetic-tokens" in harness   # not cut


def test_help_lists_the_commands_a_newcomer_runs_first() -> None:
    """`swarm --help` listed six browsing commands before `join` (ninth), and called the
    benchmarks "figures for the issues' targets": commands come under headings, taking part
    first, benchmarks last."""
    out = swarm("--help")[1]
    headings = [m.group(1) for m in re.finditer(r"╭─ (.+?) ─", out)]
    assert headings == ["Options", "Take part", "Browse the memory", "Measure"], headings
    names = re.findall(r"^│ (\w+) ", out, re.M)
    assert names.index("join") < names.index("run") < names.index("leaderboard"), names
    assert names[-1] == "bench" and "issues'" not in out


def test_help_types_read_plainly_and_leave_out_typo_bounds() -> None:
    """`swarm join --help` at 80 columns showed `<float range> [0.1<=x<=31536000]` and
    `<list[str]>`: the type column took 23 columns and every option's help wrapped in 26. Types
    read `<float>`, `<str>`; a bound that only guards against typos (a year of seconds, 10**12
    tokens) is left out of the help and still refused, with the bound, in the error."""
    out = swarm("join", "--help")[1]
    for python_like in ("range>", "list[", "31536000", "1000000000000"):
        assert python_like not in out, python_like
    assert re.search(r"--duration +<float> \[x>=0\.1\] +Stop after S seconds", out), out
    assert re.search(r"--bootstrap +<str> +Multiaddr", out), out
    assert "[0<=x<=65535]" in swarm("dashboard", "--help")[1]      # a real limit stays shown
    code, _, err = swarm("join", "--duration", "1e9")
    assert code == 2 and "31536000" in err


def test_no_help_screen_cuts_an_option_or_its_default() -> None:
    """A --x/--no-x pair took a column of its own: `bench harness --help` showed
    `--seed-budget-to…`, `join --help` the default `/ip4/0.0.0.0/tcp/740…`."""
    import typer

    def paths(command: object, path: list[str]) -> list[list[str]]:
        found = [path]
        for name, sub in getattr(command, "commands", {}).items():
            found += paths(sub, [*path, name])
        return found

    for path in paths(typer.main.get_command(app), []):
        out = swarm(*path, "--help")[1]
        assert fits(out) and not re.search(r"\w…(?=[\s│])", out), path     # nothing cut


def test_peer_ids_are_shown_alike_in_every_table(stored: Path) -> None:
    """`swarm peers` showed a key's head (12D3KooW + 8), `swarm trust` its last 10, findings its
    first 8 (12D3KooW, the same for every key): one form everywhere, the dashboard's too."""
    from swarm.output import short_peer

    key = KEYS[0].peer_id
    assert short_peer(key) == "…" + key[-8:] and short_peer(None) == ""
    (stored / "peers.json").write_text(json.dumps([{"peer_id": key, "addrs": [], "last_seen": 1.0}]))
    assert swarm("trust", "add", key)[0] == 0
    for command in (["peers"], ["trust"]):
        code, out, _ = swarm(*command)
        assert code == 0 and short_peer(key) in out and key[:16] not in out, command
    js = (Path(__file__).parents[2] / "swarm/web/static/app.js").read_text()
    assert "author.slice(" not in js and 'slice(-8)' in js     # peer(): "…" + the last 8


def test_trust_lists_a_pins_note(stored: Path) -> None:
    key = KEYS[1].peer_id
    assert swarm("trust", "add", key, "--note", "my laptop")[0] == 0
    code, out, _ = swarm("trust")
    assert code == 0 and "pinned (user): my" in out and "laptop" in out and fits(out)


def test_a_table_too_wide_for_the_terminal_prints_its_rows_apart(stored: Path) -> None:
    """`swarm sql "SELECT * FROM seed_stats"` (README) was cropped at 80 columns: the last five
    columns were not shown at all."""
    code, out, _ = swarm("sql", "SELECT * FROM seed_stats ORDER BY config_hash LIMIT 2")
    assert code == 0 and fits(out) and "row 2" in out
    for column in ("track", "config_hash", "config", "n", "mean", "std", "best", "worst"):
        assert f"\n{column} " in out, column
    code, out, _ = swarm("sql", "SELECT 1 AS n, 'x' AS s")        # a narrow one stays a table
    assert code == 0 and "┃ n ┃ s ┃" in out


def test_json_output_has_no_nan(stored: Path) -> None:
    """jq refuses NaN and Infinity, which DuckDB computes (a corr over constant values)."""
    code, out, _ = swarm("sql", "--json", "SELECT 'nan'::DOUBLE AS x, ['inf'::DOUBLE] AS l")

    def refuse(name: str) -> None:
        raise ValueError(name)

    assert code == 0 and json.loads(out, parse_constant=refuse) == [{"x": None, "l": [None]}]
    assert "nan" in swarm("sql", "SELECT 'nan'::DOUBLE AS x")[1]   # the table still says so
    assert not math.isnan(0.0)


def test_progress_stays_off_stdout(stored: Path, tmp_path: Path) -> None:
    """`swarm export ... > file` began with a blank line: the progress bar wrote to stdout."""
    code, out, _ = swarm("export", "--format", "csv", "--out", str(tmp_path / "csv"))
    assert code == 0 and out.startswith("exported to")
    code, _, _ = swarm("memory", "export", str(tmp_path / "all.swarm"))
    code, out, _ = swarm("memory", "import", str(tmp_path / "all.swarm"))
    assert code == 0 and out.startswith("imported ")


@pytest.mark.skipif(not Path("/dev/full").is_char_device(), reason="no /dev/full")
def test_memory_export_to_a_device_writes_to_it_never_over_it(stored: Path, tmp_path: Path) -> None:
    """Written through a link to /dev/full, the backup said "wrote 6 records" and, as root, a file
    took the device's place: the stream went to FILE.part, then was renamed over FILE."""
    (tmp_path / "out").mkdir()
    full, null = tmp_path / "out" / "full", tmp_path / "out" / "null"
    full.symlink_to("/dev/full")
    null.symlink_to("/dev/null")
    code, out, err = swarm("memory", "export", str(full))
    assert code == 1 and err.strip() == f"error: cannot write {full}: No space left on device"
    code, out, err = swarm("memory", "export", str(null))
    assert code == 0 and out == "" and err.strip() == f"wrote 6 records to {null}"
    assert full.is_symlink() and null.is_symlink() and sorted(full.parent.iterdir()) == [full, null]


def test_a_tiny_number_is_not_shown_as_zero(stored: Path) -> None:
    """`swarm findings` showed a claim's p of 1.42e-05 as "0.0000" (the dashboard: 1.42e-5)."""
    code, out, _ = swarm("sql", "SELECT 0.0000142::DOUBLE AS p, -0.00002::DOUBLE AS e, "
                                "0.0::DOUBLE AS z, 0.8627::DOUBLE AS big")
    cells = out.splitlines()[-2].split("│")[1:-1]
    assert code == 0 and [c.strip() for c in cells] == ["1.42e-05", "-2e-05", "0.0000", "0.8627"]


def test_show_fits_80_columns(stored: Path) -> None:
    with Store(memory_path(stored)) as store:
        run_id = store.query("SELECT id FROM runs LIMIT 1").rows[0][0]
    code, out, _ = swarm("show", run_id[:8])
    lines = out.splitlines()
    assert code == 0 and lines[1].startswith("author 12D3KooW") and lines[2].startswith("seq ")
    assert lines[2].endswith(" UTC")


def test_a_file_as_home_is_one_line_for_every_command(tmp_path: Path) -> None:
    a_file = tmp_path / "home-file"
    a_file.write_text("x")
    stream = tmp_path / "all.swarm"
    stream.write_bytes(b"SWARM-RECORDS 1\n")
    for command in (["memory", "import", str(stream)], ["runs"], ["status"], ["peers"],
                    ["trust", "add", KEYS[0].peer_id], ["memory", "stats"], ["pending"],
                    ["pending", "discard", "--all"]):
        code, _, err = swarm(*command, "--home", str(a_file))
        assert code == 1 and err.strip() == f"error: --home {a_file} is not a folder", command
    assert a_file.read_text() == "x"


def test_a_file_as_swarm_home_is_named_as_such(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only $SWARM_HOME was set, and the error spoke of a `--home` never given."""
    a_file = tmp_path / "home-file"
    a_file.write_text("x")
    monkeypatch.setenv("SWARM_HOME", str(a_file))
    code, _, err = swarm("runs")
    assert code == 1 and err.strip() == f"error: $SWARM_HOME {a_file} is not a folder"


def test_a_path_the_machine_refuses_is_one_line(tmp_path: Path) -> None:
    """A home under a file (or on a read-only disk) failed deep inside with a traceback: in
    `memory import` (making the home), `run` (the data cache), `trust add` (its temporary file)."""
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    stream = tmp_path / "all.swarm"
    stream.write_bytes(b"SWARM-RECORDS 1\n")
    under = str(a_file / "home")
    for command in (["memory", "import", str(stream)], ["run", "--no-record", "--budget-tokens",
                                                        "1000"]):
        code, out, err = swarm(*command, "--home", under)
        assert code == 1 and err.strip().startswith(f"error: cannot use {a_file}"), command
        assert err.strip().endswith("Not a directory") and len(err.strip().splitlines()) == 1
    home = tmp_path / "h"
    (home / "trust.tmp").mkdir(parents=True)          # where `trust add` writes before renaming
    code, _, err = swarm("trust", "add", KEYS[0].peer_id, "--home", str(home))
    assert code == 1 and err.strip() == f"error: cannot use {home / 'trust.tmp'}: Is a directory"
    assert a_file.read_text() == "x" and not (home / "trust.json").exists()


@pytest.mark.parametrize("name", ["", "a b", "x/records"])
def test_join_refuses_a_network_name_that_is_no_name(tmp_path: Path, name: str) -> None:
    """`--network "$NET"` with NET unset started a node on a swarm of its own, "/swarm//records/1"."""
    home = tmp_path / "h"
    code, _, err = swarm("join", "--network", name, "--home", str(home), "--no-work", "--no-mdns",
                         "--no-dht", "--listen", "/ip4/127.0.0.1/tcp/0", "--duration", "1")
    assert code == 1 and err.strip() == (f"error: --network wants a name (1-64 characters, no "
                                         f"spaces or '/'), not {name!r}")
    assert not home.exists()


@pytest.mark.parametrize("bench", ["network", "swarm"])
def test_a_bench_refuses_more_nodes_than_the_memory_holds(bench: str) -> None:
    """`bench network --nodes 100000` started node after node (24 were left running when it was
    stopped); now it says, before starting any, what they would need."""
    code, _, err = swarm("bench", bench, "--nodes", "100000")
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: --nodes 100000 needs about ") and " GB is available here" in err


def test_a_data_dir_that_is_not_a_folder_stops_run_and_join(tmp_path: Path) -> None:
    home = tmp_path / "h"
    for command in (["run", "--budget-tokens", "1000"], ["join", "--duration", "1"]):
        code, _, err = swarm(*command, "--home", str(home), "--data-dir", str(tmp_path / "nope"))
        assert code == 1 and "--data-dir" in err and "is not a folder" in err, command
    assert not home.exists()


def test_memory_import_of_a_folder_says_so(home: Path, tmp_path: Path) -> None:
    code, _, err = swarm("memory", "import", str(tmp_path))
    assert code == 1 and "is a folder, not a record stream" in err and not home.exists()


def test_bench_nat_has_a_table_and_json(monkeypatch: pytest.MonkeyPatch) -> None:
    from swarm.bench.nat import print_results
    from swarm.output import console

    monkeypatch.setattr(console, "_width", 80)      # rich reads COLUMNS when it is None
    out = swarm("bench", "nat", "--help")[1]
    assert "--json" in out
    results = {"public_baseline": {"link": "direct", "propagation": {
                   "latency_ms_median": 458.2, "latency_ms_p99": 1840.0,
                   "delivered_within_1s_pct": 97.5}},
               "relayed": {"link_after_s": 3.14, "link": "relayed", "propagation": {
                   "latency_ms_median": None, "latency_ms_p99": None,
                   "delivered_within_1s_pct": 0.0}}}
    with console.capture() as captured:
        print_results(results)
    text = captured.get()
    assert "458" in text and "3.1" in text and "relayed" in text and fits(text)
    assert "┃ phase" in text                    # a table, not rows apart


def test_the_end_of_join_counts_one_run_as_one() -> None:
    from swarm.progress_view import summary_line

    assert summary_line({"runs": 1}).startswith("1 run by this node;")


def test_the_join_panels_title_stays_on_one_line() -> None:
    """Before the work loop starts the panel had one narrow row, and its title wrapped under it:
    "swarm node:" on one line, "starting" on the next."""
    from rich.console import Console

    from swarm.progress_view import panel

    console = Console(width=80, record=True, file=io.StringIO())
    console.print(panel(None))
    assert console.export_text().splitlines()[0].strip() == "swarm node: starting"


def test_join_says_where_results_go_and_how_to_look(tmp_path: Path) -> None:
    """A newcomer's first question after `make join`: where do results go, how do I see them?"""
    home = tmp_path / "h"
    code, out, err = swarm("join", "--home", str(home), "--no-work", "--no-mdns", "--no-dht",
                           "--listen", "/ip4/127.0.0.1/tcp/0", "--duration", "1")
    assert code == 0, err
    said = " ".join(out.split())
    assert f"results go to {home / 'memory.duckdb'}" in said
    assert f"swarm runs --home {home}" in said


DOCS = ["README.md", "docs/RUNNING.md", "docs/HARNESS.md", "docs/TRUST.md", "docs/ROLES.md",
        "docs/ARCHITECTURE.md", "docs/PROTOCOL.md", "docs/RECORDS.md"]


def _shown_commands(text: str) -> list[str]:
    """Every `swarm ...` a doc shows: lines of its code blocks (a `[--flag ...]` line continues
    the one above) and inline `swarm ...` spans."""
    shown: list[str] = []
    in_block = False
    for line in text.splitlines():
        if line.strip().startswith("```"):
            in_block = not in_block
            continue
        code = line.split("#", 1)[0].strip()
        if in_block and code.startswith("swarm "):
            shown.append(code)
        elif in_block and code.startswith("[--") and shown:
            shown[-1] += " " + code
    shown += [" ".join(m.split()) for m in re.findall(r"`(swarm [^`]+)`", text)]
    return shown


def _unknown_in(command: str, root: object) -> list[str]:
    """The words of `command` that are no command or flag of the CLI."""
    tokens = command.translate(str.maketrans("[]|", "   ")).split()[1:]
    node, i = root, 0
    while i < len(tokens) and tokens[i] in getattr(node, "commands", {}):
        node, i = node.commands[tokens[i]], i + 1
    if node is root and tokens and not tokens[0].startswith("-"):
        return [tokens[0]]
    known = {"--help", "-v", "-vv"} | {o for p in node.params for o in (*p.opts, *p.secondary_opts)}
    flags = [f.split("=")[0] for t in tokens[i:] if t.startswith("--") for f in t.split("/")]
    return [f for f in flags if f not in known]


@pytest.mark.parametrize("doc", DOCS)
def test_every_command_the_docs_show_exists(doc: str) -> None:
    """A doc that names a flag the CLI does not have fails here (`--throughput` once did not
    fit the help screen; a renamed flag must take its docs along)."""
    import typer

    root = typer.main.get_command(app)
    text = (Path(__file__).parents[2] / doc).read_text()
    shown = _shown_commands(text)
    assert shown and not {c: u for c in shown if (u := _unknown_in(c, root))}


def test_runs_of_two_budgets_are_two_tables_that_fit(home: Path) -> None:
    """README's `swarm run`s at two budgets are two track ids: one table with a track column cut
    every column (the purpose vanished, the ids lost their distinguishing hash)."""
    from memory import codec
    from node.harness.tracks import TRACKS

    base = TRACKS["tinystories-cpu"].base.model_dump()
    tracks = ["tinystories-cpu:" + "1" * 32, "tinystories-cpu:" + "2" * 32]
    bodies = [synthetic.run_body(t, base, seed, 2.3) for t in tracks for seed in (0, 4294967295)]
    with Store(memory_path(home)) as store:
        store.add([codec.sign(KEYS[0], "run", i + 1, b) for i, b in enumerate(bodies)])
    for command in (["runs"], ["leaderboard"]):
        code, out, _ = swarm(*command)
        assert code == 0 and fits(out) and "row 1" not in out, command
        assert "tinystories-cpu:11111111" in out and "tinystories-cpu:22222222" in out
    out = swarm("runs")[1]
    assert out.count("┃ run ") == 2 and "4294967295" in out and out.count("manual") == 4


@pytest.mark.parametrize("args", [["bench", "harness", "--out"], ["bench", "nat", "--out"],
                                  ["bench", "search", "--partial"]])
def test_a_bench_refuses_an_out_file_it_could_not_write_before_it_runs(
        tmp_path: Path, args: list[str]) -> None:
    """`bench harness --out /nonexistent/x.json` measured for minutes, then raised a traceback."""
    for bad, words in ((tmp_path / "no" / "x.json", "is not a folder"),
                       (tmp_path, "is a folder, not a file")):
        code, out, err = swarm(*args, str(bad))
        assert code == 1 and out == "" and words in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("args", [["bench", "swarm", "--data-dir"], ["bench", "harness", "--data-dir"],
                                  ["bench", "dashboard", "--records", "1000", "--cache"],
                                  ["bench", "network", "--sync-only", "--cache"]])
def test_a_bench_refuses_a_file_for_a_folder_in_one_line(tmp_path: Path, args: list[str]) -> None:
    """Each raised a traceback (bench swarm: only once its nodes had failed to start)."""
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    code, _, err = swarm(*args, str(a_file))
    assert code == 1 and err.strip().endswith(f"{a_file} is not a folder") and a_file.read_text() == "x"


@pytest.mark.parametrize("config", ["zz", "%", ""])
def test_runs_refuses_a_config_that_is_no_hash(stored: Path, config: str) -> None:
    """`--config zz` listed no runs and `--config %` (LIKE's wildcard) every run, as if filtered."""
    code, out, err = swarm("runs", "--config", config)
    assert code == 1 and out == "" and err.strip() == (
        f"error: --config wants a config hash or its start (hex, as tables show it), not {config!r}")


def test_runs_by_author_takes_the_tail_the_tables_show(stored: Path) -> None:
    from swarm.output import short_peer

    key = KEYS[0].peer_id
    every = json.loads(swarm("runs", "--json", "--author", key)[1])
    assert every and {r["author"] for r in every} == {key}
    for given in (short_peer(key), key[-8:]):
        assert json.loads(swarm("runs", "--json", "--author", given)[1]) == every
    code, _, err = swarm("runs", "--author", "…")
    assert code == 1 and "give a peer id or its tail" in err


@pytest.mark.parametrize("args", [["trust", "add", "[/]x"], ["show", "[red]x[/red]"],
                                  ["runs", "--status", "[/]"], ["tracks", "[/bold]"]])
def test_an_error_quoting_brackets_is_printed_as_typed(home: Path, args: list[str]) -> None:
    """Rich read the user's text inside an error as markup: `[/]` raised a MarkupError."""
    code, _, err = swarm(*args)
    assert code in (1, 2) and err.startswith("error: ") and args[-1] in err
    assert len(err.strip().splitlines()) == 1


def test_paths_and_column_names_with_brackets_are_printed_as_typed(stored: Path,
                                                                    tmp_path: Path) -> None:
    folder = tmp_path / "b[/]"             # a folder `b[` holding a folder `]`
    folder.mkdir(parents=True)
    for args, shown in ((["report", "--out", str(folder / "r.html")], str(folder / "r.html")),
                        (["memory", "export", str(folder / "a.swarm")], str(folder / "a.swarm")),
                        (["memory", "import", str(folder / "a.swarm")], str(folder / "a.swarm")),
                        (["export", "--format", "csv", "--out", str(folder / "csv")], str(folder)),
                        (["sql", 'SELECT 1 AS "[/]"'], "[/]")):
        code, out, err = swarm(*args)
        assert code == 0 and shown in out.replace("\n", ""), (args, err)


@pytest.mark.parametrize("command", ["runs", "leaderboard", "findings"])
def test_a_track_this_memory_does_not_hold_is_named_not_nothing_yet(stored: Path,
                                                                     command: str) -> None:
    """`--track synthetic_track` (a typo) on a memory full of runs read "nothing yet", as if
    nothing had run: it says no run has that track, and which tracks the memory holds."""
    code, out, err = swarm(command, "--track", "synthetic_track")
    text = " ".join(out.split())
    assert code == 0 and err == "" and "nothing yet" not in text
    assert "no runs of track 'synthetic_track'" in text and "synthetic-track" in text
    code, out, _ = swarm(command, "--track", "synthetic-track")
    assert code == 0 and "no runs of track" not in " ".join(out.split())
    if command != "findings":
        assert json.loads(swarm(command, "--track", "synthetic_track", "--json")[1]) == []


@pytest.mark.parametrize("args", [
    ["join", "--lease", "inf"], ["join", "--query-timeout", "1e300"], ["join", "--duration", "inf"],
    ["join", "--sync-interval", "inf"], ["join", "--run-timeout", "inf"],
    ["join", "--checkpoint-every", "inf"], ["run", "--timeout", "inf"],
    ["run", "--checkpoint-every", "1e300"], ["sql", "SELECT 1", "--query-timeout", "inf"],
])
def test_a_time_past_a_year_is_a_usage_error(home: Path, args: list[str]) -> None:
    """`--lease inf` started a node whose every work step was an OverflowError traceback (0 runs);
    `--query-timeout 1e300` a timer past threading's limit, a traceback in a thread."""
    code, out, err = swarm(*args)
    assert code == 2 and out == "" and "Input should be less than or equal to 31536000" in err
    assert len(err.strip().splitlines()) == 1 and not home.exists()


def test_a_leaderboard_of_strangers_says_why_nothing_ranks(home: Path) -> None:
    """Records by authors not trusted here (imported, or a swarm just joined): the leaderboard
    read `untrusted` on every row and no rank, with nothing saying why or what to do."""
    from roles import trust

    with Store(memory_path(home)) as store:
        store.add(synthetic.history())
    code, out, _ = swarm("leaderboard")
    assert code == 0 and "│ untrusted │" in out
    note = " ".join(out.split("┘")[-1].split())
    assert note.startswith("untrusted: runs by authors this node does not trust") and \
        "swarm trust" in note, out
    for key in synthetic.keypairs(3, seed=100):        # history's authors, trusted
        trust.pin(home, key.peer_id, "test")
    code, out, _ = swarm("leaderboard")
    assert code == 0 and "untrusted" not in out, out
