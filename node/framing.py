"""Length-prefixed msgpack frames on a libp2p stream, with bounded reads and timeouts.

A frame is a 4-byte big-endian length followed by that many bytes of msgpack. The reader refuses a
length above its limit before reading the body, and every read has a deadline, so a peer that sends
garbage, a huge length or nothing at all costs at most `max_bytes` of memory and `timeout` seconds.
Runs on the trio side (py-libp2p streams are trio objects).
"""
from __future__ import annotations

import struct
from typing import Any, Protocol

import msgpack
import trio

HEADER = struct.Struct(">I")
MAX_FRAME_BYTES = 1024 * 1024           # one sync batch (~256 KB) plus slack; refuse anything larger
READ_CHUNK = 64 * 1024


class ProtocolError(Exception):
    """The remote peer broke the framing or message rules (garbage, oversize, stall, early close)."""


class PeerGone(ProtocolError):
    """The stream was closed or reset by the peer: a violation only where the protocol says so
    (a responder whose requester hangs up has nothing to hold against it)."""


class Stream(Protocol):
    """What framing needs from a py-libp2p INetStream."""

    async def read(self, n: int | None = None) -> bytes: ...
    async def write(self, data: bytes) -> None: ...


class Stalled(ProtocolError):
    """The peer sent nothing, or took nothing, within the deadline."""


class Metered:
    """A stream wrapper that counts the bytes read and written through it (sync's wire figures)."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.read_bytes = 0
        self.written_bytes = 0

    async def read(self, n: int | None = None) -> bytes:
        """Read like the wrapped stream, counting."""
        data = await self.stream.read(n)
        self.read_bytes += len(data)
        return data

    async def write(self, data: bytes) -> None:
        """Write like the wrapped stream, counting."""
        await self.stream.write(data)
        self.written_bytes += len(data)


def _stream_errors() -> tuple[type[BaseException], ...]:
    from libp2p.exceptions import BaseLibp2pError   # libp2p is already loaded wherever streams exist
    return (BaseLibp2pError, OSError, EOFError)


async def read_exactly(stream: Stream, size: int) -> bytes:
    """Read exactly `size` bytes (no deadline here: callers wrap a whole frame in one)."""
    parts: list[bytes] = []
    remaining = size
    try:
        while remaining:
            chunk = await stream.read(min(remaining, READ_CHUNK))
            if not chunk:
                raise PeerGone(f"stream ended {remaining} bytes short")
            parts.append(chunk)
            remaining -= len(chunk)
    except _stream_errors() as exc:
        raise PeerGone(f"stream failed: {type(exc).__name__}") from exc
    return b"".join(parts)


async def read_frame(stream: Stream, max_bytes: int = MAX_FRAME_BYTES, timeout: float = 10.0) -> Any:
    """Read one frame and decode it; raise `ProtocolError` on any violation or after `timeout` s."""
    return unpack(await read_body(stream, max_bytes, timeout))


async def read_body(stream: Stream, max_bytes: int = MAX_FRAME_BYTES, timeout: float = 10.0
                    ) -> bytes:
    """Read one frame's body, undecoded (as `read_frame`, for a caller that decodes it elsewhere)."""
    with trio.move_on_after(timeout) as scope:
        (size,) = HEADER.unpack(await read_exactly(stream, HEADER.size))
        if size > max_bytes:
            raise ProtocolError(f"frame of {size} bytes exceeds the {max_bytes}-byte limit")
        body = await read_exactly(stream, size)
    if scope.cancelled_caught:
        raise Stalled(f"no complete frame within {timeout:.0f} s")
    return body


def unpack(body: bytes) -> Any:
    """Decode a frame body (msgpack bounds every length by the body size)."""
    try:
        return msgpack.unpackb(body, raw=False, strict_map_key=True, use_list=True)
    except Exception as exc:  # msgpack raises many types; all mean "not a frame"
        raise ProtocolError(f"frame is not msgpack: {str(exc)[:80]}") from exc


def pack(message: Any) -> bytes:
    """Encode one frame: length header plus msgpack body."""
    body = msgpack.packb(message, use_bin_type=True)
    return HEADER.pack(len(body)) + body


class FrameTooLarge(ValueError):
    """This node built a frame over the limit: its own failure, never the peer's."""


async def write_frame(stream: Stream, message: Any, timeout: float = 10.0) -> None:
    """Write one frame; raise `ProtocolError` if the peer does not take it within `timeout` s,
    `FrameTooLarge` (before writing anything) if it is over MAX_FRAME_BYTES."""
    data = pack(message)
    if len(data) - HEADER.size > MAX_FRAME_BYTES:
        raise FrameTooLarge(f"refusing to send a {len(data)}-byte frame")
    with trio.move_on_after(timeout) as scope:
        try:
            await stream.write(data)
        except _stream_errors() as exc:
            raise PeerGone(f"stream failed: {type(exc).__name__}") from exc
    if scope.cancelled_caught:
        raise Stalled(f"peer did not take a frame within {timeout:.0f} s")
