"""/swarm/blob/1.0.0: a track's files served by sha256, chunk-verified, resumable, rate-limited.

Why our own protocol: py-libp2p 0.8.1 has no bitswap or file exchange that verifies content.

One stream per transfer, framed by node/framing.py:
  client -> {"sha256": HEX64, "from": FIRST_CHUNK}
  server -> {"size": N, "chunk": C, "hashes": [sha256 of each C-byte chunk, 32 bytes each]}
            or {"error": "unknown"} for a hash it does not hold (nothing else is ever served)
  server -> {"i": K, "d": BYTES} for K = FIRST_CHUNK .. last, then closes.
The client refuses a manifest whose size is not the pinned size (for an upstream file pinned by
hash alone: over the file's `HubFile.max_bytes` bound), checks every chunk against the
manifest as it arrives (a bad chunk ends the transfer with that peer), and checks the whole file
against the pinned sha256 at the end (a manifest that lies costs at most one file). A partial file
(`.part`) resumes: its chunks are re-checked against the next manifest and the transfer starts at
the first chunk not yet held. The server serves only files this process has verified
(`node.harness.data.held`), caps blob size, concurrent streams (per peer and in all) and bytes per
second per peer.
"""
from __future__ import annotations

import hashlib
import logging
import math
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from node.framing import ProtocolError, read_frame, write_frame
from node.harness import data
from node.host import _close, _reset
from node.relay import remote_ip
from node.serveslots import ServeSlots

log = logging.getLogger(__name__)
PROTOCOL_ID = "/swarm/blob/1.0.0"
CHUNK = 256 * 1024
MAX_BLOB = 4 << 30                 # 16,384 chunk hashes: the manifest stays under one frame
SERVE_PER_PEER = 2                 # concurrent transfers one peer may hold
SERVE_LIMIT = 8                    # ... and all peers together
SERVE_PER_ADDRESS = 4              # ... and per remote address (node/serveslots.py)
SERVE_S = math.inf                 # no cap on a transfer: each frame has FRAME_TIMEOUT_S
RATE_PER_PEER = 64 << 20           # bytes per second one peer may draw
FRAME_TIMEOUT_S = 30.0
# A transfer must keep up this average rate once it has run SLOW_GRACE_S: a peer that drips one
# chunk per frame timeout would otherwise hold a fetch for hours (4 GiB: 16,384 x 30 s). Its
# verified chunks stay in `.part`; the next peer resumes after them.
MIN_RATE = 64 << 10
SLOW_GRACE_S = 60.0
PEER_WAIT_S = 10.0                 # how long a fetch waits for a first connection


class BlobError(RuntimeError):
    """A transfer failed or a peer sent bytes that are not the ones asked for; one line."""


class TokenBucket:
    """`rate` units per second with a burst of `burst`; `take` sleeps until there are enough."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic):
        self.rate, self.burst, self.clock = rate, burst, clock
        self.level, self.stamp = burst, clock()

    def wait_for(self, amount: float) -> float:
        """Take `amount` now; return the seconds to sleep before using it (0: none)."""
        now = self.clock()
        self.level = min(self.burst, self.level + (now - self.stamp) * self.rate)
        self.stamp = now
        self.level -= amount
        return max(0.0, -self.level / self.rate)

    async def take(self, amount: float) -> None:
        """Wait until `amount` may be spent."""
        delay = self.wait_for(amount)
        if delay:
            await trio.sleep(delay)


def chunk_hashes(path: Path) -> tuple[str, list[bytes]]:
    """(sha256 of the file, sha256 of each CHUNK-sized piece), in one read."""
    whole, parts = hashlib.sha256(), []
    with path.open("rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            whole.update(block)
            parts.append(hashlib.sha256(block).digest())
    return whole.hexdigest(), parts


def _read_chunk(path: Path, index: int) -> bytes:
    with path.open("rb") as f:
        f.seek(index * CHUNK)
        return f.read(CHUNK)


def _valid_request(message: Any) -> tuple[str, int]:
    if not isinstance(message, dict) or set(message) != {"sha256", "from"}:
        raise ProtocolError("blob request must be {sha256, from}")
    sha, start = message["sha256"], message["from"]
    if not (isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)):
        raise ProtocolError("blob request: sha256 must be 64 lower-case hex digits")
    if not isinstance(start, int) or isinstance(start, bool) or not 0 <= start < MAX_BLOB // CHUNK:
        raise ProtocolError("blob request: from must be a chunk index")
    return sha, start


class BlobService:
    """Serves held files to peers and fetches missing ones from them (trio side)."""

    def __init__(self, host: Any, is_banned: Callable[[str], bool] = lambda peer: False) -> None:
        self.host = host
        self.is_banned = is_banned
        self.token: trio.lowlevel.TrioToken | None = None
        self.rate = RATE_PER_PEER
        self._buckets: dict[str, TokenBucket] = {}
        # fair among addresses, as sync's (fresh ids that never read cannot hold every slot)
        self.slots = ServeSlots(SERVE_LIMIT, SERVE_PER_PEER, SERVE_PER_ADDRESS)
        self._manifests: dict[str, list[bytes]] = {}
        self.served_bytes = 0

    # ---- lifecycle ----

    def register(self) -> None:
        """Handle the protocol on the host and offer `fetch_blocking` to the data layer."""
        from libp2p.custom_types import TProtocol

        self.token = trio.lowlevel.current_trio_token()
        self.host.set_stream_handler(TProtocol(PROTOCOL_ID), self.serve)
        data.set_peer_fetch(self.fetch_blocking)

    def close(self) -> None:
        """Stop offering peer fetches (the host is going away)."""
        data.set_peer_fetch(None)

    # ---- serving ----

    async def serve(self, stream: Any) -> None:
        """Answer one blob request (the stream handler)."""
        peer, address = str(stream.muxed_conn.peer_id), remote_ip(stream)
        if self.is_banned(peer) or not self.slots.admits(peer, address):
            await _reset(stream)
            return
        try:
            async with self.slots.serving(peer, address, SERVE_S):
                await self._serve(stream, peer)
        except ProtocolError as exc:
            log.debug("blob request from %s failed: %s", peer, exc)
            await _reset(stream)
        finally:
            await _close(stream)

    async def _serve(self, stream: Any, peer: str) -> None:
        sha, start = _valid_request(await read_frame(stream, max_bytes=256, timeout=FRAME_TIMEOUT_S))
        path = data.held(sha)
        hashes = await self._manifest(sha, path) if path is not None else None
        if hashes is None:
            await write_frame(stream, {"error": "unknown"})
            return
        size = path.stat().st_size                      # type: ignore[union-attr]
        await write_frame(stream, {"size": size, "chunk": CHUNK, "hashes": hashes},
                          timeout=FRAME_TIMEOUT_S)
        if len(self._buckets) > 4096:          # bounded: many peers over a long uptime
            self._buckets.clear()
        bucket = self._buckets.setdefault(peer, TokenBucket(self.rate, 4 * CHUNK))
        for index in range(start, len(hashes)):
            block = await trio.to_thread.run_sync(_read_chunk, path, index)
            await bucket.take(len(block))
            await write_frame(stream, {"i": index, "d": block}, timeout=FRAME_TIMEOUT_S)
            self.served_bytes += len(block)

    async def _manifest(self, sha: str, path: Path) -> list[bytes] | None:
        """The chunk hashes of a held file; None if the file no longer hashes to `sha`."""
        if sha not in self._manifests:
            whole, parts = await trio.to_thread.run_sync(chunk_hashes, path)
            if whole != sha or len(parts) > MAX_BLOB // CHUNK:
                log.warning("held file %s no longer hashes to %s…; not serving it", path, sha[:12])
                return None
            self._manifests[sha] = parts
        return self._manifests[sha]

    # ---- fetching ----

    def fetch_blocking(self, sha: str, size: int | None, dest: Path, most: int | None = None
                       ) -> Path:
        """`hub.PeerFetch` for other threads: fetch through the host's trio thread."""
        try:
            return trio.from_thread.run(self.fetch, sha, size, dest, most, trio_token=self.token)
        except trio.RunFinishedError:
            raise data.DataError("the host stopped") from None

    async def fetch(self, sha: str, size: int | None, dest: Path, most: int | None = None) -> Path:
        """Fetch the blob `sha` of `size` bytes (None: any size up to `most`, else MAX_BLOB, for
        upstream files pinned by hash only) into `dest` from a connected peer; raise `DataError`
        naming each peer tried and what went wrong."""
        if size is not None and size > MAX_BLOB:
            raise data.DataError(f"{size} bytes is over the {MAX_BLOB}-byte blob limit")
        most = MAX_BLOB if most is None else min(most, MAX_BLOB)
        peers = await self._peers()
        if not peers:
            raise data.DataError("no peer connected")
        tried = []
        for peer in peers:
            try:
                await self._fetch_from(peer, sha, size, dest, most)
                log.info("blob %s…: %d bytes from %s", sha[:12], dest.stat().st_size, peer[:16])
                return dest
            except (BlobError, ProtocolError) as exc:
                tried.append(f"{peer[:16]}… {exc}")
            except Exception as exc:  # noqa: BLE001 - dial/negotiation failures are expected
                tried.append(f"{peer[:16]}… {type(exc).__name__}")
        raise data.DataError(f"none of {len(peers)} peer{'s' if len(peers) != 1 else ''} gave {sha[:12]}… ({'; '.join(tried)})")

    async def _peers(self) -> list[str]:
        with trio.move_on_after(PEER_WAIT_S):
            while not self.host.get_connected_peers():
                await trio.sleep(0.2)
        peers = [str(p) for p in self.host.get_connected_peers() if not self.is_banned(str(p))]
        random.shuffle(peers)
        return peers

    async def _fetch_from(self, peer: str, sha: str, size: int | None, dest: Path,
                          most: int) -> None:
        part = dest.with_name(dest.name + ".part")
        for _ in range(2):        # a second round only when the kept .part failed its check
            start = _complete_chunks(part, most if size is None else size)
            stream = await self._open(peer)
            try:
                hashes, total = await self._ask(stream, sha, size, start, most)
                if await trio.to_thread.run_sync(_keep_verified, part, hashes, start) == start:
                    await self._receive(stream, part, hashes, start, total)
                    break
            finally:
                await _close(stream)
        else:
            raise BlobError("the partial file kept failing its check")
        got = await trio.to_thread.run_sync(data.sha256_file, part)
        if got != sha:
            part.unlink()
            raise BlobError(f"sent bytes hashing to {got[:12]}…, not {sha[:12]}…")
        part.replace(dest)

    async def _open(self, peer: str) -> Any:
        from libp2p.custom_types import TProtocol
        from libp2p.peer.id import ID

        with trio.fail_after(10):
            return await self.host.new_stream(ID.from_base58(peer), [TProtocol(PROTOCOL_ID)])

    async def _ask(self, stream: Any, sha: str, size: int | None, start: int,
                   most: int) -> tuple[list[bytes], int]:
        await write_frame(stream, {"sha256": sha, "from": start})
        reply = await read_frame(stream, timeout=FRAME_TIMEOUT_S)
        if isinstance(reply, dict) and reply.get("error") == "unknown":
            raise BlobError("does not hold it")
        return _valid_manifest(reply, size, most)

    async def _receive(self, stream: Any, part: Path, hashes: list[bytes], start: int,
                       size: int) -> None:
        started, received = time.monotonic(), 0
        with part.open("r+b" if part.exists() else "wb") as f:
            f.seek(start * CHUNK)
            f.truncate()
            for index in range(start, len(hashes)):
                frame = await read_frame(stream, timeout=FRAME_TIMEOUT_S)
                received += f.write(_valid_chunk(frame, index, hashes, size))
                f.flush()            # what arrived survives a crash: the next attempt resumes
                _keeping_up(received, time.monotonic() - started)


def _keeping_up(received: int, elapsed: float) -> None:
    """BlobError when a transfer past its grace averages under MIN_RATE."""
    if elapsed > SLOW_GRACE_S and received < MIN_RATE * elapsed:
        raise BlobError(f"too slow: {received / elapsed / 1024:.0f} KiB/s over {elapsed:.0f} s "
                        f"(at least {MIN_RATE >> 10} KiB/s)")


def _complete_chunks(part: Path, size: int) -> int:
    """Whole chunks already in `.part` (a part longer than the blob is started over)."""
    have = part.stat().st_size if part.exists() else 0
    if have > size:
        part.unlink()
        return 0
    return have // CHUNK


def _keep_verified(part: Path, hashes: list[bytes], upto: int) -> int:
    """Check the first `upto` chunks of `part` against `hashes`; cut it at the first bad one."""
    if not upto:
        return 0
    with part.open("r+b") as f:
        for index in range(min(upto, len(hashes))):
            if hashlib.sha256(f.read(CHUNK)).digest() != hashes[index]:
                f.truncate(index * CHUNK)
                return index
    return upto


def _valid_manifest(reply: Any, size: int | None, most: int = MAX_BLOB
                    ) -> tuple[list[bytes], int]:
    """(chunk hashes, size) of a manifest that fits the pinned size (or any size up to `most`)."""
    if not isinstance(reply, dict) or set(reply) != {"size", "chunk", "hashes"}:
        raise BlobError("sent a malformed manifest")
    offered = reply["size"]
    fits = offered == size if size is not None else (
        isinstance(offered, int) and not isinstance(offered, bool) and 0 < offered <= most)
    if not fits or reply["chunk"] != CHUNK:
        raise BlobError(f"offers {offered!r} bytes in {reply['chunk']!r}-byte chunks, "
                        f"the pin is {size if size is not None else 'at most ' + str(most)} "
                        f"in {CHUNK}")
    hashes = reply["hashes"]
    if (not isinstance(hashes, list) or len(hashes) != -(-offered // CHUNK)
            or not all(isinstance(h, bytes) and len(h) == 32 for h in hashes)):
        raise BlobError("sent a manifest whose chunk hashes do not fit the size")
    return hashes, offered


def _valid_chunk(frame: Any, index: int, hashes: list[bytes], size: int) -> bytes:
    if not isinstance(frame, dict) or frame.get("i") != index or not isinstance(frame.get("d"), bytes):
        raise BlobError(f"sent something other than chunk {index}")
    block = frame["d"]
    if len(block) != min(CHUNK, size - index * CHUNK) or hashlib.sha256(block).digest() != hashes[index]:
        raise BlobError(f"chunk {index} does not match the manifest")
    return block
