"""A file of signed records, for sneakernet transfer and tests: a magic line, then msgpack `bin` items.

Each item is one record's raw wire bytes, exactly as gossiped and stored, so a stream can be checked
and imported by any node with nothing but the authors' peer ids.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import BinaryIO

import msgpack

MAGIC = b"SWARM-RECORDS 1\n"
MAX_ITEM_BYTES = 1024 * 1024        # larger items are not records (those are <= 64 KiB); refuse early


class NotARecordStream(ValueError):
    """The file is not a record stream (or is cut short)."""


def write(out: BinaryIO, raws: Iterable[bytes]) -> int:
    """Write a stream of raw records to `out`; return how many."""
    out.write(MAGIC)
    packer = msgpack.Packer(use_bin_type=True)
    n = 0
    for raw in raws:
        out.write(packer.pack(raw))
        n += 1
    return n


def check_header(src: BinaryIO) -> None:
    """Read the stream's header from `src`; `NotARecordStream` if it is not there."""
    if src.read(len(MAGIC)) != MAGIC:
        raise NotARecordStream("not a swarm record stream (missing the 'SWARM-RECORDS 1' header)")


def read(src: BinaryIO) -> Iterator[bytes]:
    """Yield the raw records of a stream; `NotARecordStream` if it is not one, holds an item that
    is not a record, or is cut short (raised after the records before the damage)."""
    check_header(src)
    unpacker = msgpack.Unpacker(src, raw=True, max_buffer_size=MAX_ITEM_BYTES + 16,
                                max_bin_len=MAX_ITEM_BYTES, max_str_len=0, max_array_len=0,
                                max_map_len=0, max_ext_len=0)
    try:
        for item in unpacker:
            if not isinstance(item, bytes):
                raise NotARecordStream(f"stream holds a {type(item).__name__}, not a record")
            yield item
        # The unpacker stops quietly at a cut item; bytes read but not unpacked mean one.
        left = src.tell() - len(MAGIC) - unpacker.tell()
        if left:
            raise NotARecordStream("cut short: it ends inside a record")
    except msgpack.BufferFull:          # an item's header names more than max_buffer_size
        raise NotARecordStream(f"an item over {MAX_ITEM_BYTES} bytes is not a record") from None
    except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, ValueError) as exc:
        if isinstance(exc, NotARecordStream):
            raise
        raise NotARecordStream(f"corrupt record stream: {str(exc)[:120]}") from exc
