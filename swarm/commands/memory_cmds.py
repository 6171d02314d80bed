"""`swarm memory import|export|stats`: signed records as a file, and what the memory holds."""
from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import typer

from swarm.output import (console, err_console, fail, plural, print_json, print_table,
                          progress_bars, track_progress)
from swarm.reader import home_folder, open_reader, query_errors, run_query

HOME = typer.Option(None, "--home", help="Node home (default: $SWARM_HOME or ~/.swarm).")
JSON = typer.Option(False, "--json", help="Machine-readable JSON instead of a table.")
BATCH = 2000

memory_app = typer.Typer(help="Move signed records in and out; what the memory holds.",
                         no_args_is_help=True)


def _progress(total: int, quiet: bool) -> Any:
    from rich.progress import BarColumn, DownloadColumn, TextColumn
    # on stderr: stdout holds only the result (a table or --json), even when piped
    return progress_bars(TextColumn("{task.description}", markup=False), BarColumn(),
                         DownloadColumn(), quiet=quiet)


@contextlib.contextmanager
def _ctrl_c_between_batches() -> Iterator[threading.Event]:
    """Ctrl-C during an import, noted and acted on between two batches: raised inside a batch,
    DuckDB turned it into "Query interrupted" in the commit (a traceback), or it came after the
    commit and the batch went uncounted."""
    stop = threading.Event()
    if (threading.current_thread() is not threading.main_thread()     # may set no handler
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):  # nohup, &
        yield stop
        return
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def _ingest_file(src: Any, ingest: Any, progress: Any, task: Any) -> dict[str, Any]:
    from memory import stream
    from memory.store import IngestReport

    total = IngestReport()
    batch: list[bytes] = []
    with _ctrl_c_between_batches() as stop:
        try:
            _ingest_batches(stream.read(src), ingest, total, batch, stop,
                            lambda: progress.update(task, completed=src.tell()))
        except stream.NotARecordStream as exc:
            if batch:
                total.merge(ingest(batch))           # the records before the damage are kept
            raise stream.NotARecordStream(f"{exc} (the records before it were imported: "
                                          f"{_summary(total)})") from None
        if batch and not stop.is_set():
            total.merge(ingest(batch))
        if stop.is_set():               # each batch is committed whole, or not at all
            fail(f"interrupted: {_summary(total)} before the stop, kept; the same command "
                 "imports the rest (what is held already counts as duplicate)", code=130)
    return total.as_dict()


def _ingest_batches(raws: Iterator[bytes], ingest: Any, total: Any, batch: list[bytes],
                    stop: threading.Event, advanced: Any) -> None:
    """Ingest `raws` BATCH at a time into `total`, until they end or `stop` is set; what is left
    over stays in `batch` (fewer than BATCH records)."""
    for raw in raws:
        batch.append(raw)
        if len(batch) >= BATCH:
            total.merge(ingest(batch))
            batch.clear()
            advanced()
            if stop.is_set():
                return


def _summary(report: Any) -> str:
    rejected = sum(report.rejected.values())
    return f"{report.accepted} accepted, {report.duplicate} duplicate, {rejected} rejected"


@memory_app.command("import")
def import_(file: Path = typer.Argument(..., help="A record stream from `swarm memory export`."),
            json_out: bool = JSON, home: Optional[Path] = HOME) -> None:
    """Validate and add the records of FILE; report accepted / duplicate / rejected by reason."""
    from memory import stream
    from memory.store import IngestReport, Store, StoreError
    from node import api_client
    from node.home import ensure_home, memory_path

    if not file.is_file():
        fail(f"{file} is a folder, not a record stream" if file.is_dir() else f"no such file: {file}")
    with open(file, "rb") as head:          # before the home or its memory is created
        try:
            stream.check_header(head)
        except stream.NotARecordStream as exc:
            fail(f"{file}: {exc}")
    resolved = home_folder(home)
    client = api_client.connect(resolved)
    with open(file, "rb") as src, _progress(file.stat().st_size, json_out) as progress:
        task = progress.add_task(f"importing {file.name}", total=file.stat().st_size)
        try:
            if client is not None:
                def via_daemon(batch: list[bytes]) -> IngestReport:
                    return IngestReport(**client.ingest(batch))
                report = _ingest_file(src, via_daemon, progress, task)
            else:
                with Store(memory_path(ensure_home(resolved))) as store:
                    report = _ingest_file(src, store.ingest, progress, task)
        except stream.NotARecordStream as exc:
            fail(f"{file}: {exc}")
        except (StoreError, api_client.ApiError) as exc:
            fail(str(exc))
    if json_out:
        return print_json(report)
    rows = [("accepted", report["accepted"]), ("duplicate", report["duplicate"])]
    rows += [(f"rejected: {reason}", n) for reason, n in report["rejected"].items()]
    print_table(f"imported {file}", ["outcome", "records"], rows)


@memory_app.command("export")
def export(file: Path = typer.Argument(..., help="Where to write the record stream."),
           kind: Optional[str] = typer.Option(None, help="Only records of this kind."),
           json_out: bool = JSON, home: Optional[Path] = HOME) -> None:
    """Write every signed record (or one kind's) to FILE, for another node to import."""
    from memory import stream
    from memory.records import KINDS

    if kind is not None and kind not in KINDS:
        fail(f"--kind must be one of {', '.join(KINDS)}, not {kind!r}")
    with open_reader(home) as reader:
        rows = run_query(reader, "SELECT raw FROM records WHERE (? IS NULL OR kind = ?) "
                         "ORDER BY author, seq, id", [kind, kind]).rows
    raws = track_progress((raw if isinstance(raw, bytes) else bytes.fromhex(raw)
                           for (raw,) in rows), f"writing {file.name}", total=len(rows),
                          quiet=json_out)
    # a device or a pipe (/dev/stdout, a tape) is written in place: renaming a file over it
    # replaced /dev/full (as root) and reported "wrote 57 records" for a backup that went nowhere
    special = file.exists() and not file.is_file() and not file.is_dir()
    tmp = file if special else file.with_name(file.name + ".part")
    try:
        with open(tmp, "wb") as out:
            n = stream.write(out, raws)
        if not special:
            tmp.replace(file)      # never leave a half-written stream under the final name
    except OSError as exc:
        with contextlib.suppress(OSError):      # e.g. its folder is a file: nothing was written
            if not special:
                tmp.unlink(missing_ok=True)
        fail(f"cannot write {file}: {exc.strerror or exc}")
    size = None if special else file.stat().st_size          # a pipe has no size to show
    if json_out:
        return print_json({"records": n, "path": str(file), "bytes": size})
    # to stderr when the stream went to a device: it may be this very stdout (/dev/stdout)
    (err_console if special else console).print(
        f"wrote {plural(n, 'record')} to {file}" + ("" if size is None else f" ({size:,} bytes)"),
        markup=False, highlight=False, soft_wrap=True)


@memory_app.command("stats")
def stats(json_out: bool = JSON, home: Optional[Path] = HOME) -> None:
    """What the memory holds: records per kind, authors, rejections by reason, size."""
    from memory.store import file_bytes, memory_stats
    from node.home import memory_path

    with open_reader(home) as reader, query_errors():
        info = reader.stats() if hasattr(reader, "stats") else memory_stats(reader)
    if "file_bytes" not in info:        # through a running node's API: the same file, on disk here
        info["file_bytes"] = file_bytes(memory_path(home_folder(home)))
    if json_out:
        return print_json(info)
    # counts with thousands separators, sizes in MiB too: `file bytes 3682304` was read digit by
    # digit (--json keeps the numbers)
    rows: list[tuple[str, Any]] = [("records", f"{info['records']:,}"),
                                   ("authors", f"{info['authors']:,}"),
                                   ("record bytes", _size(info["record_bytes"]))]
    if "file_bytes" in info:
        rows.append(("file bytes", _size(info["file_bytes"])))
    rows += [(f"kind: {k}", f"{n:,}") for k, n in info["by_kind"].items()]
    rows += [(f"rejected: {r}", f"{n:,}") for r, n in info["rejected"].items()]
    rows.append(("flagged authors (equivocated)", f"{info['flagged_authors']:,}"))
    print_table("memory", ["", "count"], rows)


def _size(n: int) -> str:
    """`3,682,304 (3.5 MiB)`: the bytes, and in MiB past one."""
    return f"{n:,}" + (f" ({n / 2**20:.1f} MiB)" if n >= 2**20 else "")


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add `swarm memory ...` and `swarm bench memory` to the CLI."""
    from swarm.bench.memory import bench_memory

    from swarm.commands import BROWSE

    app.add_typer(memory_app, name="memory", rich_help_panel=BROWSE)
    bench_app.command("memory")(bench_memory)
