"""A record-checking helper process: `python -m memory.check_worker` (started by helpers.py).

Reads requests on stdin and answers on stdout, in order. Each message is a frame: a 4-byte
big-endian length, then a msgpack value. A request is `[tag, now, [raw, ...]]`; the answer is
`[tag, verdicts, tables]`: one verdict per raw record, as `codec.decode(raw, now)` would judge it
(None when valid, else `[reason, detail]`), and the store's rows of the valid ones, in input
order (`schema.tables`: {table name: Arrow IPC stream bytes}). The records are parsed once, here:
the store's thread only inserts the rows (it used to read every envelope again to build them).
The helper exits when stdin closes, as it does when its parent dies.
"""
from __future__ import annotations

import gc
import signal
import struct
import sys
from typing import Any, BinaryIO

import msgpack
import pyarrow as pa

from memory import codec, schema

HEADER = struct.Struct(">I")
Verdict = list[str] | None          # None: valid; else [reason, detail]
Tables = dict[str, pa.Table]         # the valid records' rows, by table (schema.tables)


def read_frame(stream: BinaryIO) -> bytes | None:
    """The next frame's body, or None at a clean end of stream."""
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    (size,) = HEADER.unpack(header)
    body = stream.read(size)
    if len(body) < size:
        return None
    return body


def frame(value: Any) -> bytes:
    """`value` as one frame."""
    body = msgpack.packb(value, use_bin_type=True)
    return HEADER.pack(len(body)) + body


def check(raws: list[bytes], now: int) -> tuple[list[Verdict], Tables]:
    """Fully check each raw record, as the store would: one verdict each, and the rows of the
    valid ones (in input order)."""
    verdicts: list[Verdict] = []
    rows: list[codec.Decoded] = []
    for raw in raws:
        try:
            rows.append(codec.checked_row(raw, now))
        except codec.Rejected as rejected:
            verdicts.append([rejected.reason.value, rejected.detail])
        else:
            verdicts.append(None)
    return verdicts, schema.tables(rows) if rows else {}


def to_ipc(tables: Tables) -> dict[str, bytes]:
    """Tables as Arrow IPC stream bytes (what crosses the pipe)."""
    out = {}
    for name, table in tables.items():
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        out[name] = sink.getvalue().to_pybytes()
    return out


def from_ipc(data: dict[str, bytes]) -> Tables:
    """Inverse of `to_ipc`."""
    return {name: pa.ipc.open_stream(body).read_all() for name, body in data.items()}


def main() -> None:
    """Answer requests until stdin closes."""
    # Ctrl-C in a terminal reaches the whole process group; the parent decides what happens.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    gc.freeze()          # the imported modules' objects: no collection need ever walk them again
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while (body := read_frame(stdin)) is not None:
        tag, now, raws = msgpack.unpackb(body, raw=False)
        verdicts, tables = check(raws, now)
        stdout.write(frame([tag, verdicts, to_ipc(tables)]))
        stdout.flush()


if __name__ == "__main__":
    main()
