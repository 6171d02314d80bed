"""The `swarm` command line. Each command group lives in swarm/commands/ and registers itself here.

Command modules import heavy libraries (torch, libp2p) inside their functions, never at the top,
so browsing commands start fast.
"""
from __future__ import annotations

import logging
import re
import signal
import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup

from swarm import commands, startup
from swarm.output import print_error


class _SwarmGroup(TyperGroup):
    """The root command: a usage error (an unknown flag, a value out of range) is one line like
    every other error, and `swarm` alone prints its help and exits 0, as `swarm --help` does."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except typer.Abort:
            print_error("aborted")
            sys.exit(1)
        except OSError as exc:              # the machine said no (a read-only home, a file where a
            logging.getLogger(__name__).debug("stopped by", exc_info=True)   # folder goes): -vv
            print_error(_os_error(exc))
            sys.exit(1)
        except Exception as exc:            # click's own exceptions (vendored by typer >= 0.2x)
            if not hasattr(exc, "exit_code") or not hasattr(exc, "format_message"):
                raise
            if type(exc).__name__ == "NoArgsIsHelpError":
                sys.exit(0)                 # a group given no command: its help is printed
            print_error(_usage_error(exc))
            sys.exit(exc.exit_code)
        sys.exit(code if isinstance(code, int) and not isinstance(code, bool) else 0)

    def invoke(self, ctx: Any) -> Any:
        """Ctrl-C (or a command that turns SIGTERM into it) is one line and exit 130: click's own
        handling printed an empty line, nothing else, and a `memory import` stopped so said
        nothing of what it had imported. Commands that say more catch it themselves."""
        try:
            startup.release()           # the imports are done: Ctrl-C stops the command itself
            return super().invoke(ctx)
        except KeyboardInterrupt:
            print_error("interrupted")
            sys.exit(130)


def _usage_error(exc: Any) -> str:
    """`Invalid value for '--limit': ... (swarm runs --help)`: the message and where to look."""
    message = " ".join(exc.format_message().split()).rstrip(".")
    ctx = getattr(exc, "ctx", None)
    path = ctx.command_path if ctx is not None else ""
    return f"{message} (see {path} --help)" if path else message


def _os_error(exc: OSError) -> str:
    """`cannot use /home/x/cache: Read-only file system`: what failed, on which path, no traceback
    (commands say more where they expect it; this is for the rest)."""
    reason = exc.strerror or str(exc)
    return f"cannot use {exc.filename}: {reason}" if exc.filename else reason


# a bound at or past this only guards against a typo (a year of seconds, 10**12 tokens): --help
# leaves it out, a value past it is still refused with the bound in the error
TYPO_BOUND = 10**6
# typer's type names that read as Python (`<list[str]>`, `<float range>`): the value's own type
PLAIN_TYPES = ((re.compile(r"^<list\[(.*)\]>$"), r"<\1>"), (re.compile(r"^<(\w+) range>$"), r"<\1>"))


def _flags_show_no_type() -> None:
    """typer >= 0.2x writes a flag's type in --help (`--json <bool>`, `-v <int>`), which reads as if
    the flag took a value (`--json true` fails): a flag shows none, as in click's own help. An
    option's type reads plainly (`<float>`, not `<float range>`), and a bound that only guards
    against typos is left out: `[0.1<=x<=31536000]` beside `<float range>` made the type column so
    wide that `swarm join --help` at 80 columns wrapped every option's help in 26 columns."""
    option = typer.core.TyperOption
    shown = getattr(option, "display_type_rich", None)
    ranged = getattr(option, "_get_number_range_help_str", None)
    if shown is None or ranged is None or getattr(shown, "swarm", False):
        return

    def display_type_rich(self: Any, ctx: Any) -> str | None:
        if self.is_flag or self.count:
            return None
        label = shown(self, ctx)
        for pattern, plain in PLAIN_TYPES:
            label = pattern.sub(plain, label) if isinstance(label, str) else label
        return label

    def range_help(self: Any) -> str | None:
        if self.max is not None and self.max >= TYPO_BOUND:
            return None if self.min is None else f"x>={self.min}"
        return ranged(self)

    display_type_rich.swarm = True          # type: ignore[attr-defined]
    option.display_type_rich = display_type_rich
    option._get_number_range_help_str = range_help


_flags_show_no_type()
app = typer.Typer(
    name="swarm",
    help="A peer-to-peer research swarm: train small models, keep only verified improvements.",
    cls=_SwarmGroup,
    invoke_without_command=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="markdown",
)
bench_app = typer.Typer(help="Benchmarks: the memory, the harness, the network, trust, the search, "
                        "the dashboard (the figures in docs/).", invoke_without_command=True)

for module in commands.modules():
    module.register(app, bench_app)
app.add_typer(bench_app, name="bench", rich_help_panel="Measure")     # last: not for a newcomer


def help_without_a_command(ctx: typer.Context) -> None:
    """A group called without a command (`swarm`, `swarm bench`): its help, exit 0."""
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help(), nl=False)
        raise typer.Exit(0)


@bench_app.callback()
def _bench(ctx: typer.Context) -> None:
    help_without_a_command(ctx)
    # SIGTERM (a CI's timeout, `kill`) ends a benchmark as Ctrl-C does: through its `finally`,
    # which stops the node processes it started instead of leaving them running
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    ctx.call_on_close(lambda: signal.signal(signal.SIGTERM, previous))   # as it was (tests)


# rich renders help through markdown-it, whose rules log ~300 DEBUG lines for one `--help`
QUIET_LOGGERS = ("markdown_it",)


@app.callback()
def _root(ctx: typer.Context,
          verbose: int = typer.Option(0, "--verbose", "-v", count=True,
                                      help="More logging (-v info, -vv debug).")) -> None:
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in QUIET_LOGGERS:            # their debug lines say nothing of swarm's work
        logging.getLogger(name).setLevel(max(level, logging.INFO))
    help_without_a_command(ctx)


def main() -> None:
    """Entry point of the `swarm` script."""
    app()


if __name__ == "__main__":      # `python -m swarm.cli ...`
    main()
