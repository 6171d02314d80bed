"""The `swarm` command line. Each command group lives in swarm/commands/ and registers itself here.

Command modules import heavy libraries (torch, libp2p) inside their functions, never at the top,
so browsing commands start fast.
"""
from __future__ import annotations

import logging
import signal

import typer

from swarm import commands

app = typer.Typer(
    name="swarm",
    help="A peer-to-peer research swarm: train small models, keep only verified improvements.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="markdown",
)
bench_app = typer.Typer(help="Benchmarks (figures for the issues' targets).", no_args_is_help=True)
app.add_typer(bench_app, name="bench")

for module in commands.modules():
    module.register(app, bench_app)


@bench_app.callback()
def _bench(ctx: typer.Context) -> None:
    # SIGTERM (a CI's timeout, `kill`) ends a benchmark as Ctrl-C does: through its `finally`,
    # which stops the node processes it started instead of leaving them running
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    ctx.call_on_close(lambda: signal.signal(signal.SIGTERM, previous))   # as it was (tests)


@app.callback()
def _root(verbose: int = typer.Option(0, "--verbose", "-v", count=True,
                                      help="More logging (-v info, -vv debug).")) -> None:
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def main() -> None:
    """Entry point of the `swarm` script."""
    app()


if __name__ == "__main__":      # `python -m swarm.cli ...`
    main()
