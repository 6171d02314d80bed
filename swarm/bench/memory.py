"""`swarm bench memory`: ingest rate, query latency, size on disk, anti-entropy cost.

Everything is measured side by side in one process on synthetic but realistic signed records
(run records of many configs, seed noise sd 0.002): medians over repeats, with the spread.
"""
from __future__ import annotations

import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import msgpack
import typer

from swarm.bench import procstat
from swarm.commands import MAX_ROWS
from swarm.output import err_console, print_json, print_table, track_progress


def _median_ms(fn: Any, repeats: int) -> dict[str, float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return {"median_ms": statistics.median(times), "p10_ms": times[len(times) // 10],
            "p90_ms": times[min(len(times) - 1, len(times) * 9 // 10)]}


def _make_records(n: int, authors: int) -> list[bytes]:
    from memory import synthetic
    from swarm.bench import memory_gen

    keys = synthetic.keypairs(authors)
    # synthetic.runs' records, byte for byte, made several times faster (memory_gen.py)
    gen = memory_gen.signed_runs(keys, n, configs=max(50, n // 20), seed=7)
    return [r.raw for r in track_progress(gen, "signing records", total=n)]


def _ingest(store: Any, raws: list[bytes], batch: int) -> dict[str, float]:
    rates = []
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(0, len(raws), batch):
        chunk = raws[i:i + batch]
        t0 = time.perf_counter()
        report = store.ingest(chunk)
        rates.append(len(chunk) / max(time.perf_counter() - t0, 1e-9))
        assert report.accepted == len(chunk), report.as_dict()
    total, cpu = time.perf_counter() - start, time.process_time() - cpu
    helpers = store.helper_pids()
    helper_cpu = sum(procstat.cpu_seconds(pid) for pid in helpers)   # they live only for this ingest
    # CPU time per record (this process's threads, plus the helper processes) does not depend on
    # what else the machine is running; records/s on an idle n-core machine is bounded by about
    # n / cpu_s_per_record.
    return {"records_per_s": len(raws) / total, "batch_median_records_per_s": statistics.median(rates),
            "helpers": len(helpers), "cpu_us_per_record": cpu / len(raws) * 1e6,
            "helper_cpu_us_per_record": helper_cpu / len(raws) * 1e6}


def _repair(full: Any, raws: list[bytes], path: Path, loss: str) -> dict[str, Any]:
    from memory.store import Store

    rng = random.Random(3)
    if loss == "random":
        keep = [r for r in raws if rng.random() >= 0.01]
    else:                                       # the newest 1% never arrived (a node was offline)
        keep = raws[: len(raws) - len(raws) // 100]
    with Store(path) as replica:
        for i in range(0, len(keep), 20000):
            replica.ingest(keep[i:i + 20000])
        start = time.perf_counter()
        digest = replica.digest()                                  # request, half a round trip
        have = msgpack.packb(replica.have(), use_bin_type=True)    # sent with it if digests differ
        sent = [raw for batch in full.missing_for(msgpack.unpackb(have, raw=False)) for raw in batch]
        replica.ingest(sent)
        elapsed = time.perf_counter() - start
        converged = replica.digest() == full.digest()
    missing = len(raws) - len(keep)
    payload = sum(len(r) for r in sent)
    framing = 4 * max(1, -(-payload // (256 * 1024)))            # 4-byte length prefix per batch
    # Everything but the missing records themselves: digest, summary, framing, and any record
    # sent that the replica already held (records_sent - missing_records of them).
    resent = sorted(map(len, sent))[: max(0, len(sent) - missing)]
    overhead = len(digest) + len(have) + framing + sum(resent)
    return {"loss": loss, "missing_records": missing, "records_sent": len(sent),
            "missing_bytes": payload, "summary_bytes": len(have), "round_trips": 1,
            "overhead_bytes": overhead, "overhead_pct": 100 * overhead / max(1, payload),
            "repair_s": elapsed, "converged": converged}


def bench_memory(records: int = typer.Option(100_000, min=1, max=MAX_ROWS,
                                             help="How many signed records."),
                 authors: int = typer.Option(20, min=1, help="How many authors write them."),
                 batch: int = typer.Option(5000, min=1, help="Records per ingest transaction."),
                 repeats: int = typer.Option(15, min=1, help="Repeats per query latency."),
                 helpers: int = typer.Option(
                     -1, min=-1, help="Record-checking helper processes (-1: the store's default, "
                              "0: check in-process)."),
                 json_out: bool = typer.Option(False, "--json", help="JSON output.")) -> None:
    """Ingest rate (signatures checked), leaderboard and seed-stat latency, size, repair cost."""
    from memory.leaderboard import top
    from memory.store import Store, file_bytes

    raws = _make_records(records, authors)
    with tempfile.TemporaryDirectory(prefix="swarm-bench-") as tmp:
        path = Path(tmp) / "memory.duckdb"
        with Store(path, helpers=None if helpers < 0 else helpers) as store:
            ingest = _ingest(store, raws, batch)
            store._con.execute("CHECKPOINT")   # measure the settled file, not the WAL
            size = file_bytes(path)
            track = store.query("SELECT track FROM runs LIMIT 1").rows[0][0]
            queries = {
                "leaderboard_top20": _median_ms(lambda: top(store, track, 20), repeats),
                "seed_stats_all": _median_ms(lambda: store.query(
                    "SELECT count(*), sum(n) FROM seed_stats"), repeats),
                "claim_status": _median_ms(lambda: store.query(
                    "SELECT count(*) FROM claim_status"), repeats),
            }
            repair = [_repair(store, raws, Path(tmp) / f"replica-{loss}.duckdb", loss)
                      for loss in ("random", "tail")]
    result = {"records": records, "authors": authors, "batch": batch,
              "record_bytes_mean": sum(map(len, raws)) / len(raws), "ingest": ingest,
              "db_bytes_per_100k": size * 100_000 / records, "queries": queries, "repair": repair}
    if json_out:
        return print_json(result)
    _print(result)


def _print(r: dict[str, Any]) -> None:
    print_table(f"memory bench: {r['records']:,} records, {r['authors']} authors", ["measure", "value"], [
        ("ingest records/s (signatures checked)", f"{r['ingest']['records_per_s']:,.0f}"),
        ("  median batch records/s", f"{r['ingest']['batch_median_records_per_s']:,.0f}"),
        ("  helper processes", str(r["ingest"]["helpers"])),
        ("  CPU time per record: this process", f"{r['ingest']['cpu_us_per_record']:.0f} µs"),
        ("  CPU time per record: helpers", f"{r['ingest']['helper_cpu_us_per_record']:.0f} µs"),
        ("mean record bytes", f"{r['record_bytes_mean']:,.0f}"),
        ("database bytes per 100k records", f"{r['db_bytes_per_100k'] / 1e6:,.1f} MB"),
        *[(f"{name} median (p10-p90)", f"{q['median_ms']:.1f} ms ({q['p10_ms']:.1f}-{q['p90_ms']:.1f})")
          for name, q in r["queries"].items()],
        *[(f"repair 1% {x['loss']} loss", f"{x['records_sent']} records in {x['round_trips']} round trip, "
           f"overhead {x['overhead_pct']:.2f}% ({x['summary_bytes']:,} B summary), "
           f"{x['repair_s'] * 1000:.0f} ms, converged={x['converged']}") for x in r["repair"]],
    ], cell_width=200)          # the repair lines whole, folded in the value column
