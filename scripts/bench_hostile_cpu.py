"""CPU a node spends per MB of hostile input, for each protocol a peer can send it bytes on.

    PYTHONPATH=. .venv/bin/python scripts/bench_hostile_cpu.py [--runs 3] [--keys 200000] [CASE ...]
    PYTHONPATH=. .venv/bin/python scripts/bench_hostile_cpu.py --runs 1 --flood 40 20 [--requesters 8]
    PYTHONPATH=. .venv/bin/python scripts/bench_hostile_cpu.py --honest

Each case builds the bytes a hostile peer may send (within the protocol's frame limits) and runs
them through the functions the node calls on received bytes (frame decode, the protocol's checks,
the store or reconciliation work), timing process CPU (every thread, and the store's record-
checking helper processes, read with psutil). Prints one JSON line per case: the median of `--runs`,
the input's bytes, CPU-s per MB, and CPU-s per second at the most the node lets one peer id
send (`allowance_mb_s`; for sync frames, which no quota rates, a 100 Mbit/s link: 12.5 MB/s).
The 1.0.0 have cases run the real serve on an in-memory stream and also print what the
requester's CPU budget was charged (`charged_cpu_s`, node/servework.py).
Runs whatever code is on PYTHONPATH, so the same command measures main and a branch.

What is not run here: libp2p's own work (Noise, Yamux, protobuf of pubsub RPCs, the pubsub
message signature under StrictSign, one Ed25519 check per message like the record's) and the
records a sync or blob answer sends (output the peer must read; but the 1.0.0 have cases send
theirs). The local read API listens on
127.0.0.1 only (node/api_server.py): no peer reaches it.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgpack
import numpy as np
import psutil
import trio
import trio.testing

from memory import codec, reconcile
from memory.crypto import Keypair
from memory.store import Store
from node import framing, gossip, sync, sync_v1, syncquota
from node.blob import BlobError, _valid_request
from node.peers import PeerBook
from node.quota import QuotaConfig, Quotas
from node.syncwire import check_batch, expect
from tests.network.launcher import make_records

MB = 1_000_000
LINK_MB_S = 12.5                  # 100 Mbit/s: what an unrated frame stream is bounded by
HAVE_BYTES = 8 * 1024 * 1024      # sync 1.0.0's have frame limit
FRAME_BYTES = 1024 * 1024         # any other sync frame
Run = Callable[[], str]           # runs the node's code on the input once; returns the outcome
PEER_SPENT = QuotaConfig(peer_burst=0.0, peer_rate=1e-4)    # a gossip peer past its quota


def cpu() -> float:
    """CPU seconds of this process (all threads) and its live children (the store's helpers)."""
    total = time.process_time()
    for child in psutil.Process().children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.NoSuchProcess:
            pass
    return total


def frame(message: Any) -> bytes:
    """A frame body as the peer sends it."""
    return msgpack.packb(message, use_bin_type=True)


def outcome(call: Callable[[], Any]) -> str:
    """What the node's code did: its result, or the refusal it raised."""
    try:
        return str(call())[:80]
    except (ValueError, framing.ProtocolError, BlobError) as exc:
        return f"refused: {str(exc)[:80]}"


# ---- sync 1.0.0: the have frame (the responder's work) ----

def gap_frame(limit: int, bad_last: bool = False) -> bytes:
    """One author's ascending disjoint gaps [2k+1, 2k+1], as many as fit `limit` bytes."""
    author = Keypair(b"\x07" * 32).peer_id
    n = limit // 11                               # uint32 lo and hi: 11 bytes a gap
    while True:
        gaps = [[2 * k + 1, 2 * k + 1] for k in range(n)]
        if bad_last:
            gaps[-1] = [1, 1]                     # not ascending: refused, but only at the end
        body = frame({"t": "have", "h": {author: [2 * n + 1, gaps, 0]}})
        if len(body) <= limit:
            return body
        n -= n // 50


def author_frame(limit: int) -> bytes:
    """As many authors (no gaps) as fit `limit` bytes."""
    n = limit // 60
    while True:
        have = {f"12D3KooW{k:044d}": [5, [], k] for k in range(n)}
        body = frame({"t": "have", "h": have})
        if len(body) <= limit:
            return body
        n -= n // 50


def have_case(store: Store, body: bytes) -> Run:
    """The responder's work on a have frame: the real 1.0.0 serve (decode, validate, find what it
    lacks, send it) on an in-memory stream, a requester reading its frames; `run.charged` gets
    the CPU-s each run charged to the requester's budget (node/servework.py; never refilled)."""
    from node.servework import ServeWork
    digest = frame({"t": "digest", "d": bytes(16), "n": "net"})
    charged: list[float] = []

    async def exchange() -> str:
        budget = ServeWork(burst=1e9, clock=lambda: 0.0, total_burst=1e9)
        ours, theirs = trio.testing.memory_stream_pair()
        peer, sent = Pipe(theirs), []

        async def serve() -> None:
            try:
                sent.append(await sync_v1.serve(Pipe(ours), store, "net", budget.bound("10.0.0.1")))
            except framing.ProtocolError as exc:
                sent.append(f"refused: {str(exc)[:80]}")
            await ours.aclose()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve)
            for body_ in (digest, None, body):
                if body_ is None:
                    await framing.read_frame(peer, timeout=60)          # differ
                else:
                    await peer.write(framing.HEADER.pack(len(body_)) + body_)
            try:
                while expect(await framing.read_frame(peer, timeout=60), "batch"):
                    pass
            except (framing.ProtocolError, trio.BrokenResourceError):
                pass                                          # "end", or the stream closed
        charged.append(1e9 - budget.left("10.0.0.1"))
        return str(sent[0]) if isinstance(sent[0], str) else f"sent {sent[0]} records"

    def run() -> str:
        return trio.run(exchange)
    run.charged = charged                                     # type: ignore[attr-defined]
    return run


# ---- sync 2.x: request frames (the responder's work) ----

def bounds(count: int) -> list[int]:
    """`count` + 1 ascending ts bounds cutting [0, 2**40) evenly (the snapshot's ts are there)."""
    return [int(b) for b in np.linspace(0, 2**40, count + 1, dtype=np.int64)]


def requests(kind: str, count: int) -> list[list[Any]]:
    """`count` disjoint requests of `kind` covering every key."""
    edges = bounds(count)
    ids = secrets.token_bytes(16 * 8)
    salt = secrets.token_bytes(8)
    cells = bytes(13 * 9)
    make = {"s": lambda lo, hi: ["s", lo, hi],
            "h": lambda lo, hi: ["h", lo, hi, ids],
            "x": lambda lo, hi: ["x", lo, hi, salt, cells]}[kind]
    return [make(lo, hi) for lo, hi in zip(edges, edges[1:])]


def request_case(snapshot: reconcile.Snapshot, body: bytes) -> Run:
    def run() -> str:
        def serve() -> str:
            asked = expect(framing.unpack(body), "q").get("q")
            replies, at = reconcile.answer_at(snapshot, asked, v21=True)
            return f"{len(replies)} replies, {at.size} records"
        return outcome(serve)
    return run


# ---- sync as requester: a hostile responder's batches ----

def spoil(raw: bytes, how: str) -> bytes:
    """A record spoiled in one way: its signature (`badsig`) or its bytes (`garbage`)."""
    if how == "badsig":
        payload, signature = msgpack.unpackb(raw)
        return msgpack.packb([payload, bytes([signature[0] ^ 1]) + signature[1:]])
    return secrets.token_bytes(len(raw))


def batch_records(how: str, limit: int) -> list[bytes]:
    """Records of one batch frame (fresh authors, `limit` bytes at most), spoiled as `how`."""
    out: list[bytes] = []
    future = codec.now_ms() + 10 * codec.MAX_CLOCK_SKEW_MS
    while True:
        key = Keypair.generate()
        raws = make_records(10, key, ts=future if how == "future" else None)
        if how in ("badsig", "garbage"):
            raws = [spoil(raw, how) for raw in raws]
        if sum(map(len, out + raws)) + 16 * len(out + raws) > limit or len(out) + 10 > 4096:
            return out
        out += raws


def batch_case(tmp: Path, how: str, runs: int) -> tuple[int, Run]:
    """Requester side: frame decode, batch check, sync quota admission, ingest (every check)."""
    bodies = [frame({"t": "batch", "r": batch_records(how, FRAME_BYTES)}) for _ in range(runs)]
    store = Store(tmp / f"batch-{how}.duckdb")
    quotas = syncquota.SyncQuotas(Quotas())

    def run() -> str:
        def pull() -> str:
            batch = check_batch(expect(framing.unpack(bodies.pop()), "batch").get("r"))
            keep, drops = quotas.admit("peer", syncquota.read_heads(batch), "10.0.0.1")
            report = store.ingest([raw for raw, k in zip(batch, keep) if k])
            return f"accepted {report.accepted} rejected {dict(report.rejected)} dropped {drops}"
        return outcome(pull)
    return len(bodies[0]), run


# ---- gossip: the topic validator on each message ----

def gossip_case(how: str, count: int, config: QuotaConfig | None = None,
                fresh_ids: bool = False) -> tuple[int, Run]:
    """Validator work (record check, quotas) for `count` messages of one peer (`config`: its
    quotas, default the node's; `fresh_ids`: each message from a fresh peer id, all at one
    address)."""
    if how == "overquota":                       # one author: past its burst at once
        raws = make_records(count, Keypair.generate())
    else:
        raws = [raw for _ in range(count // 10) for raw in make_records(10, Keypair.generate())]
        raws = [spoil(raw, how) for raw in raws] if how in ("badsig", "garbage") else raws
    messages = [SimpleNamespace(data=raw) for raw in raws]

    def run() -> str:
        peers = PeerBook(invalid_limit=10**9)
        validate = gossip.make_validator(peers, Quotas(config or QuotaConfig()), gossip.Tally(),
                                         "me", lambda p: None, lambda p: "10.0.0.1")
        passed = sum(validate(f"id{i}" if fresh_ids else "peer", msg)
                     for i, msg in enumerate(messages))
        return f"passed {passed} of {len(messages)}"
    return sum(len(raw) for raw in raws), run


# ---- blob: the request frame ----

def blob_case() -> tuple[int, Run]:
    body = frame({"sha256": "a" * 64, "from": 3})

    def run() -> str:
        for _ in range(10_000):
            _valid_request(framing.unpack(body))
        return "10,000 requests"
    return 10_000 * len(body), run


# ---- sync 2.x: one requester asking without pause, through the real serve loop ----

class Pipe:
    """One end of an in-memory stream, as framing reads and writes it (a 2.1.0 stream)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    async def read(self, n: int | None = None) -> bytes:
        return bytes(await self.stream.receive_some(n))

    async def write(self, data: bytes) -> None:
        await self.stream.send_all(data)

    def get_protocol(self) -> str:
        return sync.PROTOCOL_ID


def flood(snapshot: reconcile.Snapshot, warmup_s: float, window_s: float,
          requesters: int = 1) -> float:
    """CPU-s per second the serve loop spends, from `warmup_s` to `warmup_s + window_s`, on
    `requesters` requesters (each from its own address) that each send a frame of one sketch of
    every key as soon as each answer arrives. The answer for a sketch that does not decode is
    [False]: the requesters' side costs ~nothing."""
    store = SimpleNamespace(reconcile_snapshot=lambda: snapshot)
    request = frame({"t": "q", "q": requests("x", 1)})
    opening = frame({"t": "open", "n": "net", "q": requests("x", 1)})
    budget = getattr(sync, "Work", None) and __import__("node.servework").servework.ServeWork()

    async def ask(nursery: trio.Nursery, address: str) -> None:
        ours, theirs = trio.testing.memory_stream_pair()
        nursery.start_soon(sync.serve, Pipe(ours), store, "net",
                           *((budget.bound(address),) if budget else ()))
        peer = Pipe(theirs)
        await peer.write(framing.HEADER.pack(len(opening)) + opening)
        while True:
            await framing.read_frame(peer, timeout=60)
            await peer.write(framing.HEADER.pack(len(request)) + request)

    async def main() -> float:
        async with trio.open_nursery() as nursery:
            for k in range(requesters):
                nursery.start_soon(ask, nursery, f"10.0.{k}.1")
            await trio.sleep(warmup_s)
            used, started = cpu(), trio.current_time()
            await trio.sleep(window_s)
            used, seconds = cpu() - used, trio.current_time() - started
            nursery.cancel_scope.cancel()
        return used / seconds

    return trio.run(main)


def honest(theirs_ts: np.ndarray, theirs_keys: np.ndarray) -> None:
    """The responder's CPU (its answering thread, what node/servework.py charges) for whole
    honest 2.1.0 exchanges, memory/reconcile.py's own requester asking: one line each."""
    rng = np.random.default_rng(3)
    n = theirs_keys.size
    theirs = reconcile.Snapshot.build(theirs_ts, theirs_keys, np.full(n, 700))
    for name, keep in (("fresh", np.zeros(n, bool)), ("random_half", rng.random(n) < 0.5),
                       ("1pct_lost", rng.random(n) < 0.99), ("in_sync", np.ones(n, bool))):
        mine = reconcile.Snapshot.build(theirs_ts[keep], theirs_keys[keep],
                                        np.full(int(keep.sum()), 700))
        requester, spent, frames = reconcile.Requester(mine), 0.0, 0
        asked = requester.first()
        while asked:
            started = time.thread_time()
            replies, _ = reconcile.answer(theirs, asked)
            spent += time.thread_time() - started
            frames += 1
            requester.absorb(asked, replies)
            asked = requester.next_frame()
        print(json.dumps({"case": f"honest_{name}", "keys": n, "frames": frames,
                          "responder_cpu_s": round(spent, 3)}), flush=True)


# ---- identify push; a blob chunk (the node as fetcher) ----

def identify_case() -> tuple[int, Run]:
    """A 1 MiB identify (push) of 15,000 protocols: protobuf parse and the bounded peerstore
    update (node/patches.py) that py-libp2p calls on it."""
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.identity.identify.pb.identify_pb2 import Identify
    from libp2p.peer.id import ID
    from libp2p.peer.peerstore import PeerStore

    from node import patches
    patches.apply()
    import libp2p.identity.identify_push.identify_push as push
    message = Identify(protocols=[f"/junk/{k:058d}" for k in range(15_000)])
    body = message.SerializeToString()
    peer = ID.from_pubkey(create_new_key_pair(b"\x09" * 32).public_key)

    def run() -> str:
        parsed = Identify()
        parsed.ParseFromString(body)
        store = PeerStore()
        trio.run(push.update_peerstore_from_identify, store, peer, parsed)
        return f"{len(store.get_protocols(peer))} protocols kept"
    return len(body), run


def chunk_case() -> tuple[int, Run]:
    """Ten 256 KiB blob chunk frames checked against the manifest (node/blob.py `_valid_chunk`),
    the last one's hash wrong."""
    from node.blob import CHUNK, _valid_chunk
    blocks = [secrets.token_bytes(CHUNK) for _ in range(10)]
    hashes = [hashlib.sha256(b).digest() for b in blocks[:-1]] + [bytes(32)]
    bodies = [frame({"i": i, "d": b}) for i, b in enumerate(blocks)]

    def run() -> str:
        def fetch() -> str:
            for index, body in enumerate(bodies):
                _valid_chunk(framing.unpack(body), index, hashes, 10 * CHUNK)
            return "all passed"
        return outcome(fetch)
    return sum(map(len, bodies)), run


# ---- the table ----

def measure(name: str, size: int, run: Run, runs: int, allowance: float, note: str) -> None:
    """Time `run` `runs` times and print its line."""
    times, outcomes = [], []
    for _ in range(runs):
        started = cpu()
        outcomes.append(run())
        times.append(cpu() - started)
    median = statistics.median(times)
    per_mb = median / (size / MB)
    charged = getattr(run, "charged", None)
    extra = {"charged_cpu_s_median": round(statistics.median(charged), 4),
             "charged_cpu_s": [round(c, 4) for c in charged]} if charged else {}
    print(json.dumps({"case": name, "input_bytes": size, "cpu_s_median": round(median, 4), **extra,
                      "cpu_s": [round(t, 4) for t in times], "cpu_s_per_mb": round(per_mb, 3),
                      "allowance_mb_s": allowance,
                      "cpu_s_per_s": round(per_mb * allowance, 3), "allowance": note,
                      "outcome": outcomes[0]}), flush=True)


def cases(args: argparse.Namespace, tmp: Path) -> dict[str, Callable[[], tuple[int, Run, float, str]]]:
    """Every case: (input bytes, run, allowance MB/s, what bounds the allowance)."""
    unrated = "sync frames: no rate; a 100 Mbit/s link"
    gossip_peer = 512 / 3600                      # quota_peer: 512 MB an hour (200 records/s)

    def have_store() -> Store:
        store = Store(tmp / "have.duckdb")
        store.ingest(make_records(2000, Keypair(b"\x07" * 32), ts=1_700_000_000_000))
        return store

    rng = np.random.default_rng(1)
    keys = args.keys
    snapshot = reconcile.Snapshot.build(rng.integers(0, 2**40, keys),
                                        rng.integers(0, 2**63, keys, dtype=np.uint64),
                                        np.full(keys, 700))

    def req(kind: str, count: int) -> tuple[int, Run, float, str]:
        body = frame({"t": "q", "q": requests(kind, count)})
        return len(body), request_case(snapshot, body), LINK_MB_S, unrated

    def have(body: bytes) -> tuple[int, Run, float, str]:
        return len(body), have_case(have_store(), body), LINK_MB_S, unrated

    def batch(how: str) -> tuple[int, Run, float, str]:
        size, run = batch_case(tmp, how, args.runs)
        if how == "valid":
            return size, run, 2048 / 3600 * 1.048576, "sync quota: 2 GiB/h per serving peer"
        return size, run, 10 * size / MB / 60, ("a bad batch ends the pull, a strike; "
                                                "10 strikes/60 s ban: 10 batches a minute")

    def gossip_(how: str, config: QuotaConfig | None = None) -> tuple[int, Run, float, str]:
        size, run = gossip_case(how, 500, config)
        over = (size / 500 * 50 * 10 / 60 / MB,
                "every 50th over quota a strike, 10 strikes/60 s ban: 500/min")
        rate = {"valid": (gossip_peer, "quota_peer: 512 MB/h, 200 records/s"), "overquota": over}
        if config is not None:                  # the sending peer past its own quota
            rate = {how: over}
        allowance, note = rate.get(how, (size / 500 * 10 / 60 / MB,
                                         "each a strike, 10/60 s ban: 10 a minute"))
        return size, run, allowance, note

    def gossip_fresh_ids(count: int, config: QuotaConfig) -> tuple[int, Run, float, str]:
        size, run = gossip_case("badsig", count, config, fresh_ids=True)
        address = QuotaConfig().peer_rate * QuotaConfig().address_factor
        return size, run, address * size / count / MB, (
            "quota_address: 1600 records/s, invalid ones charged too (main: none, a link)")

    return {
        "sync1_have_gaps": lambda: have(gap_frame(HAVE_BYTES)),
        "sync1_have_gaps_bad_last": lambda: have(gap_frame(HAVE_BYTES, bad_last=True)),
        "sync1_have_authors": lambda: have(author_frame(HAVE_BYTES)),
        "sync2_q_split_2048": lambda: req("s", 2048),
        "sync2_q_have_2048": lambda: req("h", 2048),
        "sync2_q_sketch_1": lambda: req("x", 1),
        "sync2_q_sketch_2048": lambda: req("x", 2048),
        "sync_batch_valid": lambda: batch("valid"),
        "sync_batch_badsig": lambda: batch("badsig"),
        "sync_batch_garbage": lambda: batch("garbage"),
        "sync_batch_future": lambda: batch("future"),
        "gossip_valid": lambda: gossip_("valid"),
        "gossip_badsig": lambda: gossip_("badsig"),
        "gossip_garbage": lambda: gossip_("garbage"),
        "gossip_overquota": lambda: gossip_("overquota"),
        # the forwarding peer's records bucket empty (refilled at a record a ~3 hours)
        "gossip_peer_overquota": lambda: gossip_("valid", PEER_SPENT),
        "gossip_peer_overquota_badsig": lambda: gossip_("badsig", PEER_SPENT),
        # a fresh peer id for each record, all from one address: twice the address's burst, here
        # 2,000 records (the node's: 16,000), so that the ids stay within PeerBook's MAX_PEERS
        # (past it, with every id struck within the minute, nothing can be pruned and each new
        # id costs a scan of the book: 32,000 ids took 127 CPU-s)
        "gossip_fresh_ids_badsig": lambda: gossip_fresh_ids(4000, QuotaConfig(peer_burst=250)),
        "blob_request": lambda: (*blob_case(), LINK_MB_S, "blob requests: no rate; a 100 Mbit/s link"),
        "blob_chunks_as_fetcher": lambda: (*chunk_case(), LINK_MB_S,
                                           "a blob's chunks: no rate; a 100 Mbit/s link"),
        "identify_push_15000_protocols": lambda: (*identify_case(), LINK_MB_S,
                                                  "identify push: no rate; a 100 Mbit/s link"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", nargs="*", help="cases to run (default: all)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keys", type=int, default=200_000,
                        help="keys in the responder's reconciliation snapshot")
    parser.add_argument("--flood", type=float, nargs=2, metavar=("WARMUP_S", "WINDOW_S"),
                        help="instead: CPU-s per second of requesters sending sketch frames "
                             "without pause to the real serve loop, over the window after warmup")
    parser.add_argument("--requesters", type=int, default=1,
                        help="with --flood: requesters, each from its own address")
    parser.add_argument("--honest", action="store_true",
                        help="instead: the responder's CPU for whole honest 2.1.0 exchanges")
    args = parser.parse_args()
    if args.honest:
        rng = np.random.default_rng(1)
        honest(rng.integers(0, 2**40, args.keys), rng.integers(0, 2**63, args.keys, np.uint64))
        return
    if args.flood:
        rng = np.random.default_rng(1)
        snapshot = reconcile.Snapshot.build(rng.integers(0, 2**40, args.keys),
                                            rng.integers(0, 2**63, args.keys, dtype=np.uint64))
        for _ in range(args.runs):
            print(json.dumps({"case": "sync2_flood_sketch", "keys": args.keys,
                              "requesters": args.requesters, "warmup_s": args.flood[0],
                              "window_s": args.flood[1], "cpu_s_per_s": round(
                                  flood(snapshot, *args.flood, args.requesters), 3)}), flush=True)
        return
    with tempfile.TemporaryDirectory() as tmp:
        table = cases(args, Path(tmp))
        for name in args.case or list(table):
            size, run, allowance, note = table[name]()
            measure(name, size, run, args.runs, allowance, note)


if __name__ == "__main__":
    main()
