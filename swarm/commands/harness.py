"""`swarm run`, `swarm tracks` and `swarm bench harness`: the training harness from the shell.

torch is imported inside the command functions only: `import swarm.cli` stays fast.
"""
from __future__ import annotations

import contextlib
import errno
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import typer

from swarm.commands import MAX_BUDGET_TOKENS, MAX_SECONDS
from swarm.output import (check_folder, check_out_file, console, err_console, fail, home_flag,
                          plural, print_json, print_table, progress_bars, write_out_file)


def _track_rows() -> list[dict[str, Any]]:
    from node.harness.tracks import TRACKS
    rows = []
    for t in TRACKS.values():
        rows.append({"name": t.name, "id": t.id if t.data.pinned else None,
                     "accelerator": t.accelerator, "data": t.data.name,
                     "data_pinned": t.data.pinned, "vocab": t.tokenizer.vocab_size,
                     "eval_bytes": t.eval.prefix_bytes, "budget_tokens": t.budget.tokens,
                     "base_config_hash": t.base.hash(), "description": t.description})
    return rows


def tracks(json_out: bool = typer.Option(False, "--json", help="JSON for programs.")) -> None:
    """List the tracks and their ids (content hashes of data, tokenizer, eval, budget, base)."""
    rows = _track_rows()
    if json_out:
        print_json(rows)
        return
    # 80 columns: the full id (it starts with the name), then one line per track with the rest
    print_table("tracks", ["id", "device", "vocab", "budget"],
                [(r["id"] or f"{r['name']} (id pinned on first fetch)", r["accelerator"],
                  r["vocab"], _tokens(r["budget_tokens"])) for r in rows])
    for r in rows:
        console.print(f"[bold]{r['name']}[/]: {r['description']}; data {r['data']}",
                      highlight=False)


def _tokens(n: int) -> str:
    """A token count for people: 2.5M, 400M, 200k."""
    for unit, size in (("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if n >= size:
            return f"{n / size:g}{unit}"
    return str(n)


def _progress_bars():
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
    return progress_bars(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                         TextColumn("{task.fields[info]}"), TimeRemainingColumn())


def _prepare_hook(bars, tasks: dict[str, Any]):
    def hook(stage: str, done: int, total: int | None) -> None:
        if stage not in tasks:
            tasks[stage] = bars.add_task(stage, total=total, info="")
        bars.update(tasks[stage], completed=done, total=total)
    return hook


def _event_hook(bars, tasks: dict[str, Any]):
    def hook(event: dict[str, Any]) -> None:
        if event.get("event") == "start":
            tasks["steps"] = event["steps"]
            tasks["train"] = bars.add_task("train", total=event["steps"],
                                           info=f"{event['params']:,} params, {event['precision']}")
        elif event.get("event") == "resumed" and "train" in tasks:
            bars.update(tasks["train"], completed=event["step"])
            bars.console.print(f"resuming from step {event['step']} of {tasks['steps']} "
                               "(its checkpoint; --fresh starts over)", highlight=False)
        elif event.get("event") == "stopped":
            tasks["stopped"] = event.get("step")
        elif event.get("event") == "progress" and "train" in tasks:
            bars.update(tasks["train"], completed=event["step"],
                        info=f"loss {event['loss']:.3f}  {event['tokens_per_s']:,.0f} tok/s")
    return hook


def _show_result(result: Any) -> None:
    m = result.metrics
    # quantities as people read them (`wall_s 86.9539`, `tokens 19456`, `peak_mem_mb 428.9883`
    # were printed with a table's four decimals or none of its separators); --json has them raw
    rows = [("status", result.status), ("error", result.error), ("val_bpb", m.val_bpb),
            ("train_loss", m.train_loss), ("tokens", _count(m.tokens)), ("steps", _count(m.steps)),
            ("wall_s", _fixed(m.wall_s, 1)), ("tokens_per_s", _fixed(m.tokens_per_s, 0)),
            ("mfu", m.mfu), ("peak_mem_mb", _fixed(m.peak_mem_mb, 0)), ("params", _count(m.params)),
            ("track", result.track), ("config_hash", result.config_hash), ("seed", result.seed),
            ("hardware", f"{result.hardware.accelerator} {result.hardware.device_name}, "
                         f"{plural(result.hardware.cores, 'core')}"),
            ("software", " ".join(f"{k}={v}" for k, v in result.software.items()))]
    print_table("run", ["field", "value"], [r for r in rows if r[1] is not None])
    from swarm.readable import print_run_readable
    print_run_readable(console, result.model_dump())


def _count(n: int | None) -> str | None:
    return None if n is None else f"{n:,}"


def _fixed(x: float | None, digits: int) -> str | None:
    return None if x is None else f"{x:,.{digits}f}"


def run(track: str = typer.Option("tinystories-cpu", "--track", "-t", help="Track name or id."),
        sets: list[str] = typer.Option([], "--set", help="knob=value (repeatable)."),
        seed: int = typer.Option(0, "--seed", min=0, max=2**32 - 1, help="Random seed."),
        budget_tokens: int = typer.Option(None, "--budget-tokens", min=1, max=MAX_BUDGET_TOKENS,
                                          help="Training tokens (changes the track id)."),
        threads: int = typer.Option(None, "--threads", min=1, help="CPU threads to use."),
        timeout: float = typer.Option(None, "--timeout", min=1, max=MAX_SECONDS,
                                      help="Wall-clock limit, s (default 3600)."),
        device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
        data_dir: Path = typer.Option(None, "--data-dir", help="Folder with train.txt and valid.txt."),
        home: Path = typer.Option(None, "--home", help="Home folder (default $SWARM_HOME, ~/.swarm)."),
        no_record: bool = typer.Option(False, "--no-record", help="Do not sign the run and add "
                                       "it to the home's memory."),
        fresh: bool = typer.Option(False, "--fresh", help="Start over: discard this run's "
                                   "checkpoint from an earlier, stopped start."),
        every: float = typer.Option(None, "--checkpoint-every", min=0.01, max=MAX_SECONDS,
                                    help="Training seconds "
                                    "between checkpoints (default 120; Ctrl-C checkpoints anyway)."),
        json_out: bool = typer.Option(False, "--json", help="JSON for programs.")) -> None:
    """Run one experiment locally (in a subprocess), print its result and record it in the memory.
    Stopped (Ctrl-C), it checkpoints; the same command then resumes it."""
    from node.harness.config import Refused, parse_sets
    from node.harness.hardware import available_cores
    from node.harness.tracks import get_track
    from node.home import resolve_home
    from swarm.tidy import tidy_on_failure

    if device not in ("auto", "cpu", "cuda"):
        fail(f"--device must be auto, cpu or cuda, not {device!r}")
    if data_dir is not None:
        check_folder(data_dir, "--data-dir", must_exist=True)
    try:
        chosen = get_track(track)
        overrides = parse_sets(sets)
    except KeyError as exc:
        fail(exc.args[0])
    except Refused as exc:
        fail(str(exc))
    with tidy_on_failure(resolve_home(home)):
        _run_and_report(chosen, overrides, seed, home, fresh, not no_record, json_out,
                        budget_tokens=budget_tokens, threads=threads or available_cores(),
                        timeout_s=timeout, data_dir=data_dir, device=device,
                        checkpoint_every_s=every)


def _run_and_report(track: Any, overrides: dict[str, Any], seed: int, home: Path | None,
                    fresh: bool, record: bool, json_out: bool, **spec: Any) -> None:
    """`swarm run` once its arguments are checked: train, record, print; exit 1 unless ok."""
    if record:
        _check_home(home)
    result = _resumable_run(track, overrides, seed, home, fresh, **spec)
    run_id = _record(result, home) if record and result.status != "refused" else None
    if json_out:
        print_json({**result.model_dump(), "record_id": run_id})
    if result.status == "refused":
        fail(f"refused: {result.error}")
    if not json_out:
        _show_result(result)
        if run_id:
            err_console.print(f"recorded as run {run_id[:12]} (swarm show {run_id[:12]}"
                              f"{home_flag(home)})", soft_wrap=True, highlight=False, markup=False)
    if result.status != "ok":
        raise typer.Exit(1)


def _resumable_run(track: Any, overrides: dict[str, Any], seed: int, home: Path | None,
                   fresh: bool, **spec: Any) -> Any:
    """The run's result, with progress bars, checkpointed in HOME/checkpoints and resumed from
    there when the same run stopped before (`spec`: run_experiment's other arguments). Ctrl-C
    ends the command (exit 130) with the checkpoint kept for the same command to resume. A
    second start of the same run on this home, while this one trains, is refused."""
    note = _pending_run(track.with_budget(spec["budget_tokens"]), overrides, seed,
                        spec["threads"], spec["device"])
    lock = _hold(home, note)
    try:
        return _checkpointed_run(track, overrides, seed, home, fresh, note, spec)
    finally:
        if lock is not None:
            lock.release(remove=True)


def _checkpointed_run(track: Any, overrides: dict[str, Any], seed: int, home: Path | None,
                      fresh: bool, note: Any, spec: dict[str, Any]) -> Any:
    """`_resumable_run` once it holds the run's lock."""
    from node.harness.data import DataError
    from node.harness.experiment import run_experiment

    path = _checkpoint(home, note, fresh)
    tasks: dict[str, Any] = {}
    bars = _progress_bars()
    try:
        with bars, _sigterm_as_ctrl_c():
            result = run_experiment(track, overrides, seed, home=home, checkpoint=path,
                                    on_event=_event_hook(bars, tasks),
                                    on_prepare=_prepare_hook(bars, tasks), **spec)
    except DataError as exc:
        _forget(home, note, unless=path)
        fail(str(exc))
    except KeyboardInterrupt:
        fail(_interrupted(home, note, path, tasks.get("stopped")), code=130)
    # finished, whatever its status: nothing to resume (refused before it trained, e.g. by a
    # shorter --timeout: its checkpoint, if any, stays for a start that fits)
    _forget(home, note, unless=path if result.status == "refused" else None)
    return result


def _hold(home: Path | None, note: Any) -> Any:
    """The run's lock (roles/pending.py `hold`), before anything is written: a second `swarm run`
    of the same run on this home would write the same checkpoint, and the first to end delete
    it. One line and nothing changed when a live one holds it; None without a note, or when the
    lock file cannot be written (a full disk: the run then fails or goes on as it would)."""
    from node.home import ensure_home, resolve_home
    from roles import pending

    if note is None:
        return None
    try:
        return pending.hold(ensure_home(resolve_home(home)), note.key)
    except pending.RunHeld as exc:
        fail(str(exc))
    except OSError:
        return None


def _pending_run(track: Any, overrides: dict[str, Any], seed: int, threads: int,
                 device: str) -> Any:
    """This run's note in HOME/checkpoints (roles/pending.py): the same command, the same note.
    None when its config is refused (the run then says why, without training)."""
    from node.harness.config import Refused, build_config
    from roles.pending import MANUAL, Pending

    try:
        config = build_config(track.base.model_dump(), overrides).model_dump()
    except Refused:
        return None
    track_id = track.id if track.data.pinned else track.name
    setup = f"budget={track.budget.tokens} threads={threads} device={device}"
    return Pending(track_id, config, seed, MANUAL, None, None, setup)


def _checkpoint(home: Path | None, note: Any, fresh: bool) -> Path | None:
    """Where the run checkpoints (resumed from when there is one), noted as pending; with
    `fresh`, an earlier checkpoint is discarded first. None: no checkpoints (a full disk)."""
    from node.home import ensure_home, resolve_home
    from roles import pending

    if note is None:
        return None
    root = ensure_home(resolve_home(home))
    if fresh:
        pending.drop(root, note)
    return pending.checkpoint_path(root, note) if pending.mark(root, note) else None


def _forget(home: Path | None, note: Any, unless: Path | None = None) -> None:
    """The run ended (or never trained): its note and checkpoint go, unless the checkpoint file
    `unless` exists (a later start resumes it)."""
    from node.home import resolve_home
    from roles import pending

    if note is not None and not (unless is not None and unless.exists()):
        pending.drop(resolve_home(home), note)


def _interrupted(home: Path | None, note: Any, path: Path | None, step: int | None) -> str:
    """The Ctrl-C line: whether the same command resumes the run (from which step) or starts
    it over (stopped before its first checkpoint: its note goes)."""
    said = "interrupted: the run was stopped and not recorded"
    if path is None or not path.exists():
        _forget(home, note)
        return f"{said}; run the same command to start it over (no checkpoint was written yet)"
    where = f" at step {step}" if isinstance(step, int) and step >= 0 else ""
    return f"{said}; checkpointed{where}: run the same command to resume it (--fresh starts over)"


@contextlib.contextmanager
def _sigterm_as_ctrl_c() -> Iterator[None]:
    """SIGTERM (`kill`, a CI's timeout) stops the run as Ctrl-C does: checkpointed, exit 130."""
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _check_home(home: Path | None) -> None:
    """Stop before training, not after, when the run could not be recorded in `home`: a file in
    its place, a home or memory file it may not write (a read-only disk), a memory file that is
    no DuckDB database, or a key that cannot be used."""
    from memory.store import StoreError, check_file
    from node.home import IDENTITY_FILE, memory_path, resolve_home
    from node.identity import IdentityError, load_or_create

    resolved = resolve_home(home)
    if resolved.exists() and not resolved.is_dir():
        fail(f"--home {resolved} is not a folder (or pass --no-record)")
    for path in (resolved, memory_path(resolved)):
        if path.exists() and not os.access(path, os.W_OK):     # found once it had trained
            fail(f"cannot use {path}: {_not_writable(path)} (or pass --no-record)")
    try:           # a damaged memory was found only once the run had trained (minutes, lost)
        check_file(memory_path(resolved))
        _opens(resolved)
    except StoreError as exc:
        fail(f"{exc} (or pass --no-record)")
    if (resolved / IDENTITY_FILE).exists():
        try:
            load_or_create(resolved)
        except IdentityError as exc:
            fail(f"{exc} (or pass --no-record)")


def _opens(home: Path) -> None:
    """Raise DamagedMemory when `home`'s memory, a DuckDB file, has a damaged block: it passed
    `check_file` and the run trained for minutes before it could not be recorded. A memory held
    by a process (a node, another `swarm run` recording) is left to it."""
    from memory.store import DamagedMemory, ReadOnlyMemory, StoreError
    from node import api_client
    from node.home import memory_path

    if not memory_path(home).exists() or api_client.connect(home) is not None:
        return
    try:
        ReadOnlyMemory(memory_path(home)).close()
    except DamagedMemory:
        raise
    except StoreError:          # held by another process: it will say at recording time
        return


def _not_writable(path: Path) -> str:
    """Why `path` may not be written, as the OS words it: a read-only disk, else permissions."""
    read_only = os.statvfs(path).f_flag & os.ST_RDONLY
    return os.strerror(errno.EROFS if read_only else errno.EACCES)


def _record(result: Any, home: Path | None) -> str:
    """Sign the run as this node (through its daemon when one runs) and store it; the record id."""
    from memory import codec
    from memory.store import Store, StoreError
    from node import api_client
    from node.harness.spec import to_run_body
    from node.home import memory_path, resolve_home
    from node.identity import IdentityError, load_or_create

    resolved = resolve_home(home)
    body = to_run_body(result, purpose="manual")
    client = api_client.connect(resolved)
    if client is not None:
        # A node runs on this home: it alone signs this identity's records (it allocates the seqs).
        try:
            return client.publish("run", body.model_dump(mode="json"))
        except api_client.ApiError as exc:
            fail(f"the run finished but the node did not record it: {exc}")
    try:
        keypair = load_or_create(resolved)
        with Store(memory_path(resolved)) as store:
            record = codec.sign(keypair, "run", store.next_seq(keypair.peer_id), body)
            report = store.add([record])
    except (IdentityError, StoreError, OSError) as exc:
        fail(f"the run finished but was not recorded: {exc}")
    if report.accepted != 1:
        fail(f"the run finished but the memory refused its record: {report.as_dict()}")
    return record.id


def bench_harness(seeds: int = typer.Option(5, "--seeds", min=0,
                                            help="Seeds of the track's base config."),
                  threads: int = typer.Option(None, "--threads", min=1, help="CPU threads."),
                  rounds: int = typer.Option(7, "--rounds", min=1, help="Interleaved rounds per size."),
                  steps: int = typer.Option(10, "--steps", min=1, help="Steps per round."),
                  seed_budget: int = typer.Option(None, "--seed-budget-tokens", min=1,
                                                  max=MAX_BUDGET_TOKENS,
                                                  help="Budget of the seed runs (default: the track's)."),
                  device: str = typer.Option("cpu", "--device", help="cpu (tinystories-cpu sizes) "
                                             "or cuda (tinystories-gpu sizes)."),
                  synthetic: bool = typer.Option(False, "--synthetic-tokens", help="Time the steps "
                                                 "on random tokens (no data needed)."),
                  data_dir: Path = typer.Option(None, "--data-dir", help="Local train/valid text."),
                  home: Path = typer.Option(None, "--home", help="Home folder."),
                  no_throughput: bool = typer.Option(False, "--no-throughput", help="Skip "
                                                     "tokens/s against the textbook GPT."),
                  out: Path = typer.Option(None, "--out", help="Also write the JSON report here."),
                  json_out: bool = typer.Option(False, "--json", help="JSON for programs.")) -> None:
    """Tokens/s and MFU against a textbook GPT (3 sizes), and the track's seed noise."""
    import json

    from node.harness.data import DataError, shared_data_dir
    from node.harness.hardware import available_cores
    from swarm.bench.harness import BenchSpec, run_bench
    if device not in ("cpu", "cuda"):
        fail(f"--device must be cpu or cuda, not {device!r}")
    check_out_file(out)
    if data_dir is not None:
        check_folder(data_dir, "--data-dir", must_exist=True)
    if device == "cuda" and not _cuda_ready():
        fail("--device cuda: torch sees no CUDA device here")
    spec = BenchSpec(device=device, threads=threads or available_cores(), seeds=seeds,
                     rounds=0 if no_throughput else rounds, steps=steps, home=home,
                     data_dir=data_dir or (shared_data_dir() if device == "cpu" else None),
                     seed_budget=seed_budget, synthetic=synthetic)
    note = (lambda s: None) if json_out else (lambda s: err_console.print(f"[dim]{s}[/]"))
    try:
        report = run_bench(spec, note, _partial_writer(out))
    except DataError as exc:
        fail(f"{exc} (--synthetic-tokens times the steps without data)")
    if out:
        write_out_file(out, json.dumps(report, indent=2))
    if json_out:
        print_json(report)
        return
    _print_bench(report)


def _partial_writer(out: Path | None) -> Callable[[dict[str, Any]], None] | None:
    """Writes the bench's report to --out after each size too, atomically: a bench cut by a time
    limit (the GPU check's) keeps the sizes it timed. A failed write waits for the final one."""
    if out is None:
        return None
    import json

    from memory.atomic import write_atomic

    def write(report: dict[str, Any]) -> None:
        try:
            write_atomic(out, json.dumps(report, indent=2))
        except OSError:
            pass                    # the report's final write says what is wrong, in one line
    return write


def _cuda_ready() -> bool:
    import torch
    return torch.cuda.is_available()


def _print_bench(report: dict[str, Any]) -> None:
    ok = {name: r for name, r in report["sizes"].items() if "error" not in r}
    rows = [[name, f"{r['params'] / 1e6:.2f}M", r["harness"]["precision"],
             f"{r['harness']['tokens_per_s']:,.0f}", f"{r['harness']['mfu']:.1%}",
             f"{r['textbook']['tokens_per_s']:,.0f}", f"{r['ratio']:.2f}",
             "-" if r["ratio_fp32"] is None else f"{r['ratio_fp32']:.2f}"]
            for name, r in ok.items()]
    if rows:
        print_table(f"tokens/s on {report['device_name'][:40]} (medians; MFU against the "
                    "measured peak)", ["size", "params", "prec", "harness", "MFU", "textbook",
                                       "ratio", "fp32"], rows)
    nominal = [[name, f"{r['harness']['mfu_nominal']:.1%}", f"{r['textbook']['mfu_nominal']:.1%}"]
               for name, r in ok.items() if r["harness"].get("mfu_nominal") is not None]
    if nominal:
        print_table("MFU against the data-sheet bf16 peak", ["size", "harness", "textbook"],
                    nominal)
    for name, r in report["sizes"].items():
        if "error" in r:
            err_console.print(f"{name}: {r['error']}")
    noise = report["seed_noise"]
    if noise:
        print_table(f"{report['track']} seed noise", ["seeds ok", "val_bpb mean", "val_bpb std",
                                                       "median tok/s", "median wall s"],
                    [[noise["n_ok"], noise["mean"], noise["std"], noise["median_tokens_per_s"],
                      noise["median_wall_s"]]])


def bench_checkpoint(pairs: int = typer.Option(3, "--pairs", min=0, help="Runs with and without "
                                               "checkpoints, interleaved (0: no slowdown runs)."),
                     budget_tokens: int = typer.Option(300_000, "--budget-tokens", min=1,
                                                       help="Tokens of each run."),
                     every: float = typer.Option(None, "--every", min=0.01, max=MAX_SECONDS,
                                                 help="Training seconds "
                                                 "between checkpoints (default: a node's, 120)."),
                     stop_after: float = typer.Option(30.0, "--stop-after", min=0.1,
                                                      max=MAX_SECONDS, help="Training "
                                                      "seconds before the stop of a lost-work run."),
                     no_lost_work: bool = typer.Option(False, "--no-lost-work",
                                                       help="Skip the stopped runs."),
                     threads: int = typer.Option(None, "--threads", min=1, help="CPU threads."),
                     data_dir: Path = typer.Option(None, "--data-dir", help="Local train/valid text."),
                     home: Path = typer.Option(None, "--home", help="Home folder."),
                     out: Path = typer.Option(None, "--out", help="Also write the JSON report here."),
                     json_out: bool = typer.Option(False, "--json", help="JSON for programs.")) -> None:
    """A run's checkpoint on tinystories-cpu's base config: write time and size, the training
    slowdown at the checkpoint interval, and the work lost to a stop with and without them."""
    import json

    from node.harness.data import DataError, shared_data_dir
    from node.harness.hardware import available_cores
    from node.harness.spec import CHECKPOINT_EVERY_S
    from node.home import resolve_home
    from swarm.bench import checkpoint as bench

    check_out_file(out)
    if data_dir is not None:
        check_folder(data_dir, "--data-dir", must_exist=True)
    threads, root = threads or available_cores(), resolve_home(home)
    note = (lambda s: None) if json_out else (lambda s: err_console.print(f"[dim]{s}[/]"))
    spec = {"track": "tinystories-cpu", "seed": 1, "budget": budget_tokens, "threads": threads,
            "home": root, "data_dir": data_dir or shared_data_dir()}
    report: dict[str, Any] = {"threads": threads, "budget_tokens": budget_tokens,
                              "every_s": every or CHECKPOINT_EVERY_S}
    try:
        report["write"] = bench.write_cost(root / "bench-checkpoint", threads)
        note(f"one checkpoint: {report['write']['bytes']:,} bytes, "
             f"{report['write']['write_s']:.3f} s")
        if pairs:
            report["slowdown"] = bench.slowdown(spec, pairs, report["every_s"], note)
        if not no_lost_work:
            report["lost"] = {kind: bench.lost_work(spec, stop_after, kind == "with")
                              for kind in ("without", "with")}
    except DataError as exc:
        fail(str(exc))
    if out:
        write_out_file(out, json.dumps(report, indent=2))
    if json_out:
        print_json(report)
        return
    _print_checkpoint_bench(report)


def _print_checkpoint_bench(report: dict[str, Any]) -> None:
    w = report["write"]
    print_table(f"one checkpoint ({w['params'] / 1e6:.2f}M params, medians of {w['writes']})",
                ["bytes", "write s", "read s"],
                [[f"{w['bytes']:,}", f"{w['write_s']:.3f}", f"{w['read_s']:.3f}"]])
    slow = report.get("slowdown")
    if slow:
        rows = [[kind, f"{r['median_tokens_per_s']:,.0f}", f"{r['median_wall_s']:.1f}",
                 ", ".join(str(x["checkpoints"]) for x in r["runs"]),
                 " ".join(sorted({f"{x['val_bpb']:.6f}" for x in r["runs"] if x["val_bpb"]}))]
                for kind, r in slow.items()]
        print_table(f"runs of {report['budget_tokens']:,} tokens, checkpoints every "
                    f"{report['every_s']:g} s (medians)",
                    ["checkpoints", "tok/s", "wall s", "written", "val_bpb"], rows)
    lost = report.get("lost")
    if lost:
        rows = [[kind, r.get("stopped_at_step", "-"), r.get("resumed_at_step", "-"),
                 r.get("redone_steps", "-"),
                 f"{r['lost_train_s']:.1f}" if "lost_train_s" in r else "-"]
                for kind, r in lost.items()]
        print_table("a run stopped (Ctrl-C) and run again", ["checkpoints", "stopped at",
                                                             "resumed at", "redone", "lost s"],
                    rows)


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add `run`, `tracks`, `bench harness` and `bench checkpoint`."""
    from swarm.commands import TAKE_PART

    app.command("run", rich_help_panel=TAKE_PART)(run)
    app.command("tracks", rich_help_panel=TAKE_PART)(tracks)
    bench_app.command("harness")(bench_harness)
    bench_app.command("checkpoint")(bench_checkpoint)
