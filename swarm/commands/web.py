"""`swarm dashboard` (the web dashboard on 127.0.0.1) and `swarm report` (one HTML file)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from swarm.output import console, err_console, fail

HOME = typer.Option(None, "--home", help="Node home (default: $SWARM_HOME or ~/.swarm).")


def dashboard(home: Optional[Path] = HOME,
              port: int = typer.Option(8740, "--port", min=0, max=65535, help="Port on 127.0.0.1 (0: any free one)."),
              ) -> None:
    """Serve the web dashboard of this home's memory on 127.0.0.1 (read-only; Ctrl-C stops it).

    Works whether or not `swarm join` runs on the home; a running node serves the same pages on
    its local app's URL too."""
    from swarm.reader import open_reader
    from swarm.web.serve import serve

    def listening(url: str) -> None:
        console.print(f"dashboard {url} (Ctrl-C to stop)", soft_wrap=True, highlight=False)

    with open_reader(home) as reader:
        try:
            serve(reader, home, port, listening)
        except OSError as exc:
            fail(f"cannot serve on 127.0.0.1:{port}: {exc.strerror or exc} (try --port 0)")


def report(out: Path = typer.Option(..., "--out", help="The HTML file to write."),
           track: Optional[str] = typer.Option(None, "--track", "-t", help="Track name or id "
                                               "(default: the busiest one a trusted author ran)."),
           home: Optional[Path] = HOME) -> None:
    """Write a track's dashboard views as one self-contained HTML file (opens offline).

    The verdicts are this home's (its trust roots)."""
    from swarm.reader import open_reader, query_errors
    from swarm.web.report import render
    from swarm.web.views import pick_track

    with open_reader(home) as reader, query_errors():
        if track is not None and pick_track(reader, track) is None:
            fail(f"no runs of track {track!r} in this memory (see swarm runs)")
        with err_console.status("computing the views (seconds on a big memory)"):
            text = render(reader, home, track)
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror or exc}")
    console.print(f"wrote {out} ({len(text.encode()) // 1024} KiB)", soft_wrap=True,
                  highlight=False, markup=False)


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add dashboard and report to the CLI."""
    from swarm.bench import dashboard as bench_dashboard
    from swarm.commands import BROWSE

    app.command(rich_help_panel=BROWSE)(dashboard)
    app.command(rich_help_panel=BROWSE)(report)
    bench_app.command("dashboard")(bench_dashboard.bench)
