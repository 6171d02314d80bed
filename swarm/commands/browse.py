"""Browsing the memory: leaderboard, findings, runs, show, sql, export."""
from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Sequence
from enum import Enum
from pathlib import Path
from typing import Any, Optional

import typer
from rich.text import Text

from swarm.commands import BROWSE, MAX_ROWS, MAX_SECONDS
from swarm.output import (console, err_console, fail, home_flag, one_line, plain_text, plural,
                          print_json, print_lines, print_table, short_id, short_peer,
                          track_labels, track_progress, when, with_commas, wrap_parts)
from swarm.reader import TRACK_MATCH, as_dicts, open_reader, query_errors, run_query

HOME = typer.Option(None, "--home", help="Node home (default: $SWARM_HOME or ~/.swarm).")
JSON = typer.Option(False, "--json", help="Machine-readable JSON instead of a table.")
TRACK = typer.Option(None, "--track", "-t", help="Only this track: its name (every budget) or id.")
# Every table and view of the memory, read from the database itself so new ones are exported too.
EXPORT_LIST = ("SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
               "AND table_name <> 'meta' ORDER BY table_type, table_name")


def _compact(config: Any) -> str:
    """A diff for tables, `knob=value, knob=value`: the space lets a narrow column wrap between
    pairs, never inside one (`activation=swiglu,n_embd=256` broke as `swig` `lu,n_embd`)."""
    return json.dumps(config, separators=(", ", "="))[1:-1].replace('"', "") if config else ""


def leaderboard(track: Optional[str] = TRACK, limit: int = typer.Option(20, min=1, max=MAX_ROWS,
                                                                      help="Rows per track."),
                json_out: bool = JSON, home: Optional[Path] = HOME) -> None:
    """Configs ranked by mean val_bpb over seeds, per track (lower is better).

    Only trusted, sane runs rank; configs with untrusted runs only follow, marked, unranked
    (docs/TRUST.md)."""
    from swarm.conclusions import Conclusions

    with open_reader(home) as reader, query_errors():
        rows = Conclusions(reader, home).leaderboard_rows(track, limit)
        unknown = _unknown_track(reader, track)
    if json_out:
        return print_json(rows)
    _per_track("leaderboard (val_bpb, lower is better)", rows,
               ["#", "config", "val_bpb", "± sd", "runs", "seeds", "status", "diff from base"],
               lambda r: (r.get("rank", ""), short_id(r["config_hash"]), r["mean"], r["std"],
                          r["n"], r["seeds"], _standing(r), _compact(r["diff"]) or "(base)"),
               unknown or "nothing yet")
    if any(not r["trusted"] for r in rows):
        # a newcomer's first leaderboard (records imported, or a swarm joined) read `untrusted`
        # on every row and no rank, with nothing saying why or what to do
        console.print(plain_text("untrusted: runs by authors this node does not trust, unranked "
                                 "until trusted runs back the config (swarm trust; docs/TRUST.md)",
                                 "dim"), highlight=False)


def _standing(row: dict[str, Any]) -> str:
    """verified / untrusted (ranked only once trusted authors' runs back it) / nothing."""
    return "untrusted" if not row["trusted"] else "verified" if row["verified"] else ""


def _unknown_track(reader: Any, track: str | None) -> str | None:
    """When `--track` names no track of this memory's runs (and it holds some): the line saying
    so and naming its tracks. A typo (`tinystories_cpu`) read "nothing yet" on a memory full of
    runs, as if nothing had run."""
    if track is None:
        return None
    tracks = [row[0] for row in run_query(reader, "SELECT DISTINCT track FROM runs").rows]
    if not tracks or any(t == track or t.split(":")[0] == track for t in tracks):
        return None
    names = ", ".join(sorted({t.split(":")[0] for t in tracks}))
    return f"no runs of track {track!r} in this memory (its tracks: {names})"


def _per_track(heading: str, rows: list[dict[str, Any]], columns: list[str],
               cells: Callable[[dict[str, Any]], Sequence[Any]], empty: str = "nothing yet") -> None:
    """One table per track, its name (or name:hash8) in the title, in the order the rows come: a
    track column beside the others would not fit 80 columns (runs of two budgets, say)."""
    if not rows:
        return print_table(heading, columns, [], empty=empty)
    labels = track_labels([r["track"] for r in rows])
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["track"], []).append(row)
    for track, group in groups.items():
        print_table(f"{heading}: {labels[track]}", columns, [cells(r) for r in group])


# Untrusted claims a `swarm findings` table shows (the newest): keys are free, and 5,000
# strangers' claims printed 5,000 rows that buried the trusted claims and took the terminal.
TABLE_STRANGERS = 20
ALL = typer.Option(False, "--all", help="Every claim by authors not trusted here (by default the "
                   f"table shows the newest {TABLE_STRANGERS}, --json the newest 100).")


def findings(track: Optional[str] = TRACK, all_claims: bool = ALL, json_out: bool = JSON,
             home: Optional[Path] = HOME) -> None:
    """The newest finding per track in full, then every trusted claim and its status.

    Statuses are derived here, from the meta-analysis; claims by authors this node does not trust
    are listed apart, the newest of them only unless `--all`."""
    from swarm.conclusions import MAX_STRANGERS, Conclusions, few_strangers

    with open_reader(home) as reader, query_errors():
        here = Conclusions(reader, home)
        found = here.newest_findings(TRACK_MATCH, [track] * 3)
        claims = here.claim_rows(track)
        unknown = _unknown_track(reader, track)
    trusted = [c for c in claims if c["trusted"]]
    bound = len(claims) if all_claims else MAX_STRANGERS if json_out else TABLE_STRANGERS
    untrusted, omitted = few_strangers([c for c in claims if not c["trusted"]], lambda c: False,
                                       bound)
    if json_out:
        # as the dashboard's /json/claims: the newest MAX_STRANGERS, and how many were left out
        return print_json({"findings": found, "claims": trusted, "untrusted_claims": untrusted,
                           "untrusted_claims_omitted": omitted})
    if unknown is not None:
        return console.print(plain_text(f"findings: {unknown}", "dim"))
    labels = track_labels([f["track"] for f in found] + [c["track"] for c in claims])
    console.print("findings (the newest per track)" if found else
                  "[dim]findings: none yet (the meta-analyst publishes them)[/]")
    for f in found:
        _finding_heading(f, labels[f["track"]])
        print_lines(f["text"])
    for heading, group in (("claims (status derived here from trusted runs)", trusted),
                           ("claims by authors not trusted here (provisional)", untrusted)):
        _per_track(heading, group, ["claim", "status", "effect", "p", "q", "diff"],
                   lambda c: (short_id(c["claim"]), c["status"], c["effect"], c["p_value"],
                              c["q_value"], _compact(c["diff"])))
    if omitted:
        # the command whole on a line of its own when the line does not fit (60 columns)
        again = "swarm findings --all" + (f" --track {shlex.quote(track)}" if track else "")
        parts = [f"{plural(omitted, 'more claim')} by authors not trusted here:",
                 again + home_flag(home)]
        # soft_wrap: a command longer than the line is folded by the terminal, copied whole
        console.print(Text(wrap_parts(parts, console.width), style="dim"), highlight=False,
                      soft_wrap=True)


def _finding_heading(finding: dict[str, Any], track: str) -> None:
    """A finding's heading, `track: title` in bold, then its id, time, effects and author on a
    dim line of its own, wrapped between those parts: all of it on one line, the title last,
    wrapped as prose at 80 columns (`…DrYGBDwn, not` / `trusted here): init_scale=2.0 helps`)."""
    console.print(Text.assemble((f"{track}: ", "bold"), plain_text(one_line(finding["title"]), "bold")),
                  highlight=False)
    trusted = "" if finding["trusted"] else " (not trusted here)"
    parts = [f"  finding {short_id(finding['id'])}", f"{when(finding['ts'])} UTC",
             plural(len(finding["effects"]), "effect"), f"by {short_peer(finding['author'])}{trusted}"]
    console.print(Text(wrap_parts(with_commas(parts), console.width, "    "), style="dim"),
                  highlight=False, soft_wrap=False)


class Status(str, Enum):
    ok = "ok"
    crash = "crash"
    nan = "nan"
    timeout = "timeout"
    refused = "refused"


def runs(track: Optional[str] = TRACK,
         config: Optional[str] = typer.Option(None, help="Only this config hash (or a prefix)."),
         author: Optional[str] = typer.Option(None, help="Only this author: its peer id, or "
                                              "its tail as tables show it (…AbCdEfGh)."),
         status: Optional[Status] = typer.Option(None, metavar="<status>", help="Only runs with "
                                                 "this status: ok, crash, nan, timeout, refused."),
         limit: int = typer.Option(50, min=1, max=MAX_ROWS, help="Most recent N runs."),
         json_out: bool = JSON, home: Optional[Path] = HOME) -> None:
    """Training runs, most recent first."""
    state = status.value if status else None
    tail = author.strip().lstrip("…").lstrip(".") if author is not None else None
    if tail == "":
        fail(f"--author {author!r}: give a peer id or its tail (…AbCdEfGh)")
    if config is not None:
        # a typo ("zz") listed no runs, "%" (LIKE's wildcard) or "" every run, as if filtered
        config = config.strip().lower()
        if not re.fullmatch(r"[0-9a-f]{1,32}", config):
            fail(f"--config wants a config hash or its start (hex, as tables show it), "
                 f"not {config!r}")
    with open_reader(home) as reader:
        rows = as_dicts(run_query(reader, """
            SELECT id, author, seq, ts, track, config_hash, seed, status, val_bpb, train_loss,
                   tokens, wall_s, tokens_per_s, purpose, accelerator, error, config
            FROM runs WHERE {match} AND (? IS NULL OR starts_with(config_hash, ?))
              AND (? IS NULL OR ends_with(author, ?)) AND (? IS NULL OR status = ?)
            ORDER BY ts DESC, id LIMIT ?""".format(match=TRACK_MATCH),
            [track, track, track, config, config, tail, tail, state, state, limit]))
        unknown = _unknown_track(reader, track)
    if json_out:
        return print_json(rows)
    _per_track("runs (times UTC)", rows,
               ["run", "when", "config", "seed", "status", "val_bpb", "purpose"],
               lambda r: (short_id(r["id"]), when(r["ts"]), short_id(r["config_hash"]), r["seed"],
                          r["status"], r["val_bpb"], r["purpose"]), unknown or "nothing yet")


def show(record_id: str = typer.Argument(..., help="A record id, or a unique prefix (4+ hex chars)."),
         json_out: bool = JSON, home: Optional[Path] = HOME) -> None:
    """One record in full: envelope, body, and for a claim its current status."""
    from memory import codec
    from swarm.conclusions import Conclusions

    prefix = record_id.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{4,64}", prefix):
        fail(f"not a record id: {record_id!r} (ids are hex; give at least 4 characters)")
    with open_reader(home) as reader:
        found = run_query(reader, "SELECT id, raw FROM records WHERE starts_with(id, ?) "
                          "ORDER BY id LIMIT 2", [prefix]).rows
        if not found:
            fail(f"no record with id {prefix}")
        if len(found) > 1:
            fail(f"id prefix {prefix} is ambiguous ({found[0][0][:16]}…, {found[1][0][:16]}…)")
        raw = found[0][1] if isinstance(found[0][1], bytes) else bytes.fromhex(found[0][1])
        record = codec.decode(raw, now=2**52)   # stored records were checked; skip the clock check
        status = None
        if record.kind == "claim":
            rows = as_dicts(run_query(reader, "SELECT status, verdict, p_value, q_value, "
                                      "confirmed, refuted FROM claim_status WHERE claim = ?", [record.id]))
            status = rows[0] if rows else {"status": "excluded (author equivocated)"}
        judged = None
        with query_errors():
            held = Conclusions(reader, home)
            here = held.explain(record)
            if record.kind == "run":
                judged = held.judgements(record.id)
    out: dict[str, Any] = {"id": record.id, **record.envelope()}
    if status is not None:
        out["claim_status"] = status
    if here is not None:
        out["here"] = here          # what this node concludes (docs/TRUST.md)
    if judged is not None:
        out["judgements"] = judged
    if json_out:
        return print_json(out)
    from swarm.record_view import print_record
    print_record(out, record.kind, judged)


SQL_TIMEOUT_S = 120.0       # a person's ad-hoc query may take a while; the API's default is 5 s


def sql(query: str = typer.Argument(..., help="One SELECT statement (tables and views: see docs)."),
        json_out: bool = JSON, home: Optional[Path] = HOME,
        query_timeout: float = typer.Option(SQL_TIMEOUT_S, "--query-timeout", min=0.1,
                                            max=MAX_SECONDS,
                                            help="Stop the query after S seconds.")) -> None:
    """Run a read-only SQL query over the memory (no file or network access)."""
    with open_reader(home) as reader:
        result = run_query(reader, query, timeout_s=query_timeout)
    if json_out:
        return print_json([dict(zip(result.columns, row)) for row in result.rows])
    print_table(plural(len(result.rows), "row"), result.columns, result.rows, empty="no rows")


class Format(str, Enum):
    parquet = "parquet"
    csv = "csv"


def export(fmt: Format = typer.Option(..., "--format", help="parquet or csv."),
           out: Path = typer.Option(..., "--out", help="Folder to write one file per table into."),
           json_out: bool = JSON, home: Optional[Path] = HOME) -> None:
    """Write every table and view to files for analysis elsewhere (pandas, R, DuckDB...)."""
    if out.exists() and not out.is_dir():
        fail(f"{out} exists and is not a folder")
    written = []
    with open_reader(home) as reader:
        names = [name for (name,) in run_query(reader, EXPORT_LIST).rows]
        try:
            out.mkdir(parents=True, exist_ok=True)      # only once the memory answered
            for name in track_progress(names, "exporting", quiet=json_out):
                columns = "* EXCLUDE (raw, id8)" if name == "records" else "*"   # internal columns
                table = _arrow_table(reader, f"SELECT {columns} FROM {name}")
                path = out / f"{name}.{fmt.value}"
                _write_table(table, path, fmt)
                written.append({"table": name, "rows": table.num_rows, "path": str(path)})
        except OSError as exc:
            fail(f"cannot write {exc.filename or out}: {exc.strerror or exc}")
    if json_out:
        return print_json(written)
    # the folder is in the title: each row names its file in it (`--json` has the full paths)
    print_table(f"exported to {out}", ["table", "rows", "file"],
                [(w["table"], w["rows"], Path(w["path"]).name) for w in written])


def _arrow_table(reader: Any, sql: str) -> Any:
    """The rows of `sql` as an Arrow table, typed as the memory types them: straight from DuckDB
    where the reader can (a memory file; 50,000 runs: 1.1 s against 2.1 s through Python rows),
    else from the rows a daemon sends."""
    import pyarrow as pa

    if hasattr(reader, "query_arrow"):
        with query_errors():
            return reader.query_arrow(sql)
    result = run_query(reader, sql)
    return pa.table({c: [row[i] for row in result.rows] for i, c in enumerate(result.columns)})


def _write_table(table: Any, path: Path, fmt: Format) -> None:
    if fmt is Format.parquet:
        import pyarrow.parquet as pq
        pq.write_table(table, path)
    else:
        import pyarrow.csv as pcsv
        pcsv.write_csv(table, path)


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add the browsing commands to the CLI."""
    for command in (leaderboard, findings, runs, show, sql, export):
        app.command(rich_help_panel=BROWSE)(command)
