"""`swarm bench network --sync-records N`: catch-up and repair through `/swarm/sync/2.1.0`.

A real node process (`swarm join`) serves a memory of N records by A authors; this process is the
other node: a py-libp2p host with a store of its own that pulls through `node.sync.pull` over
loopback, so the figures are exact: seconds (first pull start to last record ingested and verified;
pulls repeat, as a node's do, until the memory holds every record),
round trips, and sync bytes on the wire (both ways, frame headers included; Noise and Yamux
framing not counted) per byte of records received; sketches sent (and failed to decode); CPU
seconds of the pulling process, its record-checking helpers and the serving node, and their sum
per record pulled (less sensitive to a shared machine's load than the time); and the machine's
1-minute load average before and after (a shared machine's load skews the times).
The pulls are rationed as a node's are (node/syncquota.py, the defaults, or scaled by
$SWARM_SYNC_QUOTA_SCALE): records dropped over quota are reported by reason.

Three pulls: a fresh node (catch-up), a node missing 1% of the records at random (gossip loss),
and a node missing the newest 1% (it was away). Signing a million records takes minutes, so the
records and the three memories are built once and kept under `--cache` (default `.bench/`).
"""
from __future__ import annotations

import os
import random
import shutil
import time
from pathlib import Path
from collections.abc import Sequence
from typing import Any

import typer

from swarm.bench import procstat
from swarm.output import err_console

CHUNK = 20_000
PHASES = ("catch_up", "repair_scattered_1pct", "repair_newest_1pct")
MAX_PULLS = 20


def records(cache: Path, count: int, authors: int) -> list[bytes]:
    """`count` signed run records by `authors` authors, from the cache (made and kept if absent)."""
    from memory import stream, synthetic

    path = cache / f"records-{count}-{authors}.swarm"
    if not path.exists():
        err_console.print(f"signing {count} records by {authors} authors (cached in {path}) ...")
        cache.mkdir(parents=True, exist_ok=True)
        raws = (r.raw for r in synthetic.runs(synthetic.keypairs(authors, seed=21), count,
                                              configs=max(20, count // 20), seed=21))
        with open(path.with_suffix(".tmp"), "wb") as out:
            stream.write(out, raws)
        path.with_suffix(".tmp").rename(path)
    with open(path, "rb") as src:
        return list(stream.read(src))


def memory(cache: Path, name: str, raws: list[bytes]) -> Path:
    """A memory file holding `raws`, built once (cached under `name`)."""
    from memory.store import Store

    path = cache / f"{name}.duckdb"
    if not path.exists():
        err_console.print(f"building the {name} memory ({len(raws)} records) ...")
        tmp = path.with_name(path.name + ".tmp")
        with Store(tmp) as store:
            for i in range(0, len(raws), CHUNK):
                store.ingest(raws[i:i + CHUNK])
        tmp.rename(path)
    return path


def without(cache: Path, name: str, full: Path, ids: list[str]) -> Path:
    """A copy of the memory `full` that never held the records `ids` (rows deleted from every
    table: the same file an ingest of the rest would give, minutes faster)."""
    import duckdb
    import pyarrow as pa

    from memory.schema import TABLE_NAMES

    path = cache / f"{name}.duckdb"
    if not path.exists():
        tmp = path.with_name(path.name + ".tmp")
        shutil.copy(full, tmp)
        con = duckdb.connect(str(tmp))
        con.register("_gone", pa.table({"id": pa.array(ids, pa.string())}))
        for table in ["records", *TABLE_NAMES.values()]:
            con.execute(f"DELETE FROM {table} WHERE id IN (SELECT id FROM _gone)")
        con.close()
        tmp.rename(path)
    return path


def variants(cache: Path, count: int, authors: int) -> dict[str, Path | None]:
    """The seed's memory and the pullers' memories: fresh (None), scattered 1%, newest 1% lacking."""
    from memory.codec import peek_id

    raws = records(cache, count, authors)
    tag = f"{count}-{authors}"
    full = memory(cache, f"full-{tag}", raws)
    lost = random.Random(3).sample(range(count), count // 100)
    return {"seed": full, "catch_up": None,
            "repair_scattered_1pct": without(cache, f"scattered-{tag}", full,
                                             [peek_id(raws[i]) or "" for i in lost]),
            "repair_newest_1pct": without(cache, f"newest-{tag}", full,
                                          [peek_id(r) or "" for r in raws[count - count // 100:]])}


def pull_until_equal(addr: str, store_path: Path, network: str, want: int,
                     seed_pid: int | None = None) -> dict[str, Any]:
    """Pull from the node at `addr` into the memory at `store_path` until it holds `want` records,
    as a node does (a pull cut short by the 300 s session limit continues in the next one).
    CPU seconds: this process (threads included), its record-checking helpers, and the serving
    node `seed_pid`'s."""
    import trio

    from memory.store import Store
    from node import quota, syncquota

    load = os.getloadavg()[0]
    cpu_start, seed_start = time.process_time(), _cpu(seed_pid)
    with Store(store_path) as store:
        quotas = quota.Quotas()
        quota.load_authors(quotas, store)
        rationing = syncquota.SyncQuotas(quotas, syncquota.config_from_environment())
        before = _held(store)
        start, pulls = time.monotonic(), []
        while _held(store)[0] < want and len(pulls) < MAX_PULLS:
            pulls.append(trio.run(_pull, addr, store, network,
                                  syncquota.SyncRation(rationing, addr)))
            if pulls[-1][0].dropped:
                break                   # over quota: a node pauses pulls from this peer (>= 60 s)
            err_console.print(f"  pull {len(pulls)}: {_held(store)[0]} of {want} records after "
                              f"{time.monotonic() - start:.0f} s (load {os.getloadavg()[0]:.1f})")
        seconds = time.monotonic() - start
        after = _held(store)
        helpers_cpu = sum(procstat.cpu_seconds(pid) for pid in store.helper_pids())
    cpu = {"requester": round(time.process_time() - cpu_start, 1),
           "requester_helpers": round(helpers_cpu, 1),
           "responder": round(_cpu(seed_pid) - seed_start, 1)}
    wire = sum(r.bytes_read + r.bytes_written for r, _ in pulls)
    gained = after[1] - before[1]
    return {"records_pulled": after[0] - before[0], "seconds": round(seconds, 2),
            "pulls": len(pulls), "failed_pulls": sum(1 for _, error in pulls if error),
            "round_trips": sum(r.rounds for r, _ in pulls), "protocol": pulls[0][0].protocol,
            "wire_bytes": wire, "record_bytes": gained,
            "wire_overhead_pct": round(100 * (wire - gained) / max(gained, 1), 2),
            "rejected": sum(sum(r.rejected.values()) for r, _ in pulls),
            "dropped_over_quota": _dropped(pulls),
            "sketches": sum(r.sketches for r, _ in pulls),
            "sketches_failed": sum(r.sketches_failed for r, _ in pulls),
            "cpu_s": cpu, "cpu_us_per_record": round(
                1e6 * sum(cpu.values()) / max(after[0] - before[0], 1), 1),
            "load_1min": [round(load, 1), round(os.getloadavg()[0], 1)]}   # before, after


def _cpu(pid: int | None) -> float:
    """CPU seconds process `pid` has used (0 if none)."""
    return 0.0 if pid is None else procstat.cpu_seconds(pid)


def _dropped(pulls: list[tuple[Any, str]]) -> dict[str, int]:
    """Records the pulls dropped over the sync quotas, by reason."""
    total: dict[str, int] = {}
    for result, _ in pulls:
        for reason, n in result.dropped.items():
            total[reason] = total.get(reason, 0) + n
    return total


def _held(store: Any) -> tuple[int, int]:
    """(records, bytes of records) in `store`."""
    return tuple(store.query("SELECT count(*), coalesce(sum(size), 0) FROM records").rows[0])


async def _pull(addr: str, store: Any, network: str, ration: Any) -> tuple[Any, str]:
    """One pull over a fresh connection: its figures, and the error that ended it ("" if none)."""
    import multiaddr
    from libp2p import new_host
    from libp2p.custom_types import TProtocol
    from libp2p.peer.peerinfo import info_from_p2p_addr

    from node import sync
    from node.framing import ProtocolError
    from node.relay import remote_ip

    host, result, error = new_host(), sync.PullResult(), ""
    async with host.run([multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
        info = info_from_p2p_addr(multiaddr.Multiaddr(addr))
        await host.connect(info)
        stream = await host.new_stream(info.peer_id, [TProtocol(p) for p in sync.PROTOCOLS])
        ration.address = remote_ip(stream)          # as a node's pulls are rationed
        try:
            await sync.pull(stream, store, network, result=result, ration=ration)
        except ProtocolError as exc:
            error = str(exc)
            err_console.print(f"  pull ended early ({error}); pulling again")
        await stream.close()
    return result, error


def run(root: Path, network: str, count: int, authors: int, cache: Path,
        phases: Sequence[str] = PHASES) -> dict[str, Any]:
    """Catch-up and repair figures against a node serving `count` records by `authors` authors:
    {"sync_catch_up": {...}, "sync_repair_scattered_1pct": {...}, "sync_repair_newest_1pct": {...}}
    (the `phases` asked for)."""
    unknown = set(phases) - set(PHASES)
    if unknown:
        raise typer.BadParameter(f"unknown sync phase {sorted(unknown)[0]!r}; one of {PHASES}")
    from node.home import memory_path
    from swarm.bench.nodes import kill_all, launch

    paths = variants(cache, count, authors)
    seed_home = root / "sync-seed"
    memory_path(seed_home).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(paths.pop("seed"), memory_path(seed_home))
    results: dict[str, Any] = {}
    try:
        seed = launch(seed_home, network + "-sync")
        for name, source in paths.items():
            if name not in phases:
                continue
            target = root / f"sync-{name}.duckdb"
            if source is not None:
                shutil.copy(source, target)
            err_console.print(f"sync: {name} ...")
            figures = pull_until_equal(seed.addr, target, network + "-sync",
                                       seed.status()["records"], seed.proc.pid)
            results[f"sync_{name}"] = {"memory_records": count, "authors": authors, **figures}
            target.unlink()
    finally:
        kill_all()
    return results
