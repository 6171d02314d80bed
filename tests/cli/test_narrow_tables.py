"""Every listing at 80 and 60 columns, with long values: no line wider than the terminal, and no
word cut inside itself ("rmsnor" "m", "fir…"): a long value wraps at spaces, or breaks after an
`=` (`knob=` `value`) or a `/` (a path)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from memory import synthetic
from memory.store import Store
from node.home import memory_path
from roles import trust
from swarm.cli import app
from swarm.output import console

LONG_DIFF = {"norm": "rmsnorm", "activation": "swiglu", "n_embd": 256, "weight_decay": 0.1,
             "warmup_steps": 200, "rope_theta": 10000.0, "tie_embeddings": True}
NOTE = "bootstrapped through on first join"
ADDR = "/ip6/2001:db8:85a3:1234:5678:8a2e:370:7334/tcp/7400"
# words of the long values above, each of which must never be cut inside itself
WORDS = ["activation=swiglu", "norm=rmsnorm", "weight_decay=0.1", "warmup_steps=200",
         "tie_embeddings=true", "rope_theta=10000.0", "bootstrapped", "through", "first",
         "equivocations.csv", ADDR]


@pytest.fixture
def long_home(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home with a claim and configs of a seven-knob diff, bootstrap pins with their note, and a
    peer known at a long IPv6 address."""
    monkeypatch.setattr(synthetic, "HISTORY_TRIES", [(LONG_DIFF, -0.08), *synthetic.HISTORY_TRIES])
    with Store(memory_path(home)) as store:
        store.add(synthetic.history())
    for key in synthetic.keypairs(2, seed=100):        # history's authors
        trust.pin(home, key.peer_id, NOTE, source="bootstrap")
    (home / "peers.json").write_text(json.dumps([{"peer_id": key.peer_id, "addrs": [ADDR]}
                                                 for key in synthetic.keypairs(1, seed=7)]))
    return home


def cut_words(out: str) -> list[str]:
    """The heads of `WORDS` that `out` shows cut: a head of one, cut between two letters or
    digits, last on its line or in its cell; of one shown, a piece between its `=`, `/` and `:`
    not shown whole;
    and any word ending in `…`."""
    cut = re.findall(r"\w…", out)
    for word in WORDS:
        pieces = [p for p in re.split(r"[=/:]", word) if p]
        if pieces[0] in out:            # shown: every piece whole
            cut += [p for p in pieces if p not in out]
        for i in range(3, len(word)):
            if not (word[i - 1].isalnum() and word[i].isalnum()):
                continue
            if re.search(rf"(?<![\w=./:-]){re.escape(word[:i])} *(│|$)", out, re.M):
                cut.append(word[:i])
    return cut


COMMANDS = [["leaderboard"], ["findings"], ["runs", "--limit", "5"], ["trust"], ["peers"],
            ["memory", "stats"], ["tracks"], ["export", "--format", "csv", "--out", "EXPORT"]]


@pytest.mark.parametrize("columns", [80, 60])
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_a_listing_fits_and_cuts_no_word(long_home: Path, tmp_path: Path, command: list[str],
                                         columns: int, monkeypatch: pytest.MonkeyPatch) -> None:
    args = [str(tmp_path / "export") if a == "EXPORT" else a for a in command]
    # rich fixes the width at import when COLUMNS is set then (pytest-xdist's workers set it)
    monkeypatch.setattr(console, "_width", columns)
    result = CliRunner(env={"COLUMNS": str(columns)}).invoke(app, args, catch_exceptions=False)
    out = result.stdout
    assert result.exit_code == 0, result.output
    assert max(map(len, out.splitlines())) <= columns, out
    assert cut_words(out) == [], out


def test_a_long_diff_is_whole_and_breaks_between_pairs(long_home: Path) -> None:
    out = CliRunner(env={"COLUMNS": "80"}).invoke(app, ["leaderboard"]).stdout
    cells = " ".join(line.split("│")[-2].strip() for line in out.splitlines() if "│" in line)
    assert "activation= swiglu, n_embd=256, norm=rmsnorm," in cells
    assert "weight_decay= 0.1" in cells                 # the seventh pair, not cut at 48 characters


@pytest.mark.parametrize("columns", [80, 60])
def test_a_findings_heading_reads_as_a_heading(home: Path, columns: int,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """`swarm findings` printed a finding's track, time, id, effects, author and title as one
    line, wrapped as prose at 80 columns (`…DrYGBDwn, not` / `trusted here): init_scale=2.0
    helps`): now `track: title` on a line of its own, then its details, wrapped between them."""
    with Store(memory_path(home)) as store:
        store.add(synthetic.history())          # its finding's author is not trusted here
    monkeypatch.setattr(console, "_width", columns)
    result = CliRunner(env={"COLUMNS": str(columns)}).invoke(app, ["findings"],
                                                             catch_exceptions=False)
    lines = result.stdout.splitlines()
    assert max(map(len, lines)) <= columns, result.stdout
    finding = json.loads(CliRunner().invoke(app, ["findings", "--json"]).stdout)["findings"][0]
    title = lines.index(f"tinystories-cpu: {finding['title']}")
    details = lines[title + 1:lines.index(next(ln for ln in lines if ln.lstrip().startswith(
        finding["title"].split()[0] + " lowers")))]       # the finding's text, indented
    assert details[0].startswith(f"  finding {finding['id'][:8]}, "), details
    assert any(ln.strip() == f"by …{finding['author'][-8:]} (not trusted here)"
               or ln.endswith(f", by …{finding['author'][-8:]} (not trusted here)")
               for ln in details), details


@pytest.mark.parametrize("columns", [80, 60])
def test_a_result_shown_row_by_row_shows_each_value_whole(long_home: Path, columns: int,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """README's `swarm sql "SELECT * FROM seed_stats"` is too wide for a table, so it prints one
    row at a time; each value was still cut at 48 characters (`{"activation":...,"lr":0.00…`),
    the config unreadable, and folded inside a number (`0.00` / `3`)."""
    monkeypatch.setattr(console, "_width", columns)
    sql = "SELECT config FROM seed_stats ORDER BY length(config) DESC LIMIT 1"
    config = json.loads(CliRunner().invoke(app, ["sql", sql, "--json"]).stdout)[0]["config"]
    args = ["sql", "SELECT track, config_hash, config, n, mean, std, best, worst FROM seed_stats"]
    out = CliRunner(env={"COLUMNS": str(columns)}).invoke(app, args, catch_exceptions=False).stdout
    assert "row 1 ─" in out and max(map(len, out.splitlines())) <= columns, out
    values = _values_named("config", out)
    assert len(values) == 8 and "…" not in out and cut_words(out) == [], out
    whole = config.replace(" ", "")              # JSON text, as the column holds it
    assert len(whole) > 48 and whole in [v.replace("\n", "") for v in values], (whole, values)
    for value in values:        # folded only after a `:` (never inside a number or a name)
        assert all(re.search(r"[:,{]$", ln) for ln in value.split("\n")[:-1]), value


def _values_named(name: str, out: str) -> list[str]:
    """Each row's value of column `name` in a row-by-row listing, its folded lines joined by
    newlines (stripped)."""
    values, lines = [], out.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(name + " "):
            parts = [line[len(name):].strip()]
            for more in lines[i + 1:]:
                if not more.startswith(" "):
                    break
                parts.append(more.strip())
            values.append("\n".join(parts))
    return values


@pytest.mark.parametrize("columns", [80, 60])
def test_a_title_too_wide_puts_its_track_whole_on_a_line_of_its_own(
        home: Path, columns: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """At 60 columns `claims by authors not trusted here (provisional): tinystories-cpu` broke
    where rich chose, each line padded to the table's width; it now reads the heading, then the
    track alone (on one line where it fits, as at 80 columns)."""
    with Store(memory_path(home)) as store:
        store.add(synthetic.history())          # no author trusted here: every claim untrusted
    monkeypatch.setattr(console, "_width", columns)
    out = CliRunner(env={"COLUMNS": str(columns)}).invoke(app, ["findings"],
                                                          catch_exceptions=False).stdout
    lines = [ln.rstrip() for ln in out.splitlines()]
    heading = "claims by authors not trusted here (provisional):"
    assert max(map(len, lines)) <= columns, out
    if columns >= len(heading) + len(" tinystories-cpu"):
        assert f"{heading} tinystories-cpu" in lines, out
    else:
        assert lines[lines.index(heading) + 1] == "  tinystories-cpu", out


@pytest.mark.parametrize("columns", [80, 60])
def test_a_record_id_alone_breaks_in_halves_not_at_the_edge(
        long_home: Path, columns: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 64-character id shown alone (the record's own in `swarm show`'s first line, a verify
    run's `ref`) folded where the terminal or its cell ended (`…4e9e8c` / `cd81`): it now reads
    whole on its line where it fits, else in two halves of 32, one under the other."""
    sql = "SELECT id, ref FROM runs WHERE purpose = 'verify' LIMIT 1"
    run_id, ref = json.loads(CliRunner().invoke(app, ["sql", sql, "--json"]).stdout)[0].values()
    monkeypatch.setattr(console, "_width", columns)
    out = CliRunner(env={"COLUMNS": str(columns)}).invoke(app, ["show", run_id[:12]],
                                                          catch_exceptions=False).stdout
    assert max(map(len, out.splitlines())) <= columns, out
    pieces = [p for ln in out.splitlines() for p in re.split(r"[\s│]+", ln) if p]
    for whole in (run_id, ref):
        assert whole in pieces or (whole[:32] in pieces and whole[32:] in pieces), out
    first = out.splitlines()[0]
    assert first == f"run {run_id}" or first == f"run {run_id[:32]}", out
