"""A record-checking helper process: `python -m memory.check_worker` (started by helpers.py).

Reads requests on stdin and answers on stdout, in order. Each message is a frame: a 4-byte
big-endian length, then a msgpack value. A request is `[tag, now, [raw, ...]]`; the answer is
`[tag, verdicts]`, one verdict per raw record, as `codec.decode(raw, now)` would judge it: None
when valid, else `[reason, detail]`. The helper exits when stdin closes, as it does when its
parent dies.
"""
from __future__ import annotations

import gc
import signal
import struct
import sys
from typing import Any, BinaryIO

import msgpack

from memory import codec

HEADER = struct.Struct(">I")
Verdict = list[str] | None          # None: valid; else [reason, detail]


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


def check(raws: list[bytes], now: int) -> list[Verdict]:
    """Fully check each raw record, as the store would; one verdict each."""
    verdicts: list[Verdict] = []
    for raw in raws:
        try:
            codec.check(raw, now)
        except codec.Rejected as rejected:
            verdicts.append([rejected.reason.value, rejected.detail])
        else:
            verdicts.append(None)
    return verdicts


def main() -> None:
    """Answer requests until stdin closes."""
    # Ctrl-C in a terminal reaches the whole process group; the parent decides what happens.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    gc.freeze()          # the imported modules' objects: no collection need ever walk them again
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while (body := read_frame(stdin)) is not None:
        tag, now, raws = msgpack.unpackb(body, raw=False)
        stdout.write(frame([tag, check(raws, now)]))
        stdout.flush()


if __name__ == "__main__":
    main()
