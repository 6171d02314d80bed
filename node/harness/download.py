"""Plain HTTPS downloads: resumable (HTTP Range), optionally capped to a prefix, sha256-checked.

A failed transfer keeps its `.part` file so the next attempt resumes where it stopped. Progress is
reported through a callback `(bytes_done, bytes_total_or_None)`; this module never prints.
"""
from __future__ import annotations

import hashlib
import logging
import re
import socket
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)
Progress = Callable[[int, "int | None"], None]
USER_AGENT = "swarm-harness/1 (+https://github.com/)"
CHUNK = 1 << 16


class DownloadError(RuntimeError):
    """The download failed or its bytes were not the expected ones."""


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _total(resp: urllib.response.addinfourl, have: int) -> int | None:
    match = re.match(r"bytes \d+-\d+/(\d+)", resp.headers.get("Content-Range", ""))
    if match:
        return int(match.group(1))
    length = resp.headers.get("Content-Length")
    return have + int(length) if length and length.isdigit() else None


def _request(url: str, have: int, max_bytes: int | None, timeout: float):
    headers = {"User-Agent": USER_AGENT}
    if have or max_bytes:
        end = str(max_bytes - 1) if max_bytes else ""
        headers["Range"] = f"bytes={have}-{end}"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def _fetch(url: str, part: Path, max_bytes: int | None, timeout: float,
           progress: Progress | None) -> None:
    have = part.stat().st_size if part.exists() else 0
    if max_bytes is not None and have >= max_bytes:
        return
    try:
        resp = _request(url, have, max_bytes, timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:        # nothing left to send: the part is the whole file
            return
        raise
    with resp:
        if resp.status == 200 and have:     # server ignored the range: start again
            log.info("%s does not resume; restarting", url)
            have = 0
        total = _total(resp, have)
        if max_bytes is not None:
            total = min(total, max_bytes) if total else max_bytes
        with part.open("ab" if have else "wb") as out:
            done = have
            while max_bytes is None or done < max_bytes:
                block = resp.read(CHUNK if max_bytes is None else min(CHUNK, max_bytes - done))
                if not block:
                    break
                out.write(block)
                done += len(block)
                if progress:
                    progress(done, total)
    if total is not None and done < total:
        raise DownloadError(f"connection closed after {done} of {total} bytes")


def download(url: str, dest: Path, *, sha256: str | None = None, max_bytes: int | None = None,
             timeout: float = 30.0, progress: Progress | None = None) -> Path:
    """Fetch `url` (its first `max_bytes` bytes when given) to `dest`; resume a partial download.

    Raises `DownloadError` with a one-line reason; a checksum mismatch deletes the bytes.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        _fetch(url, part, max_bytes, timeout, progress)
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, socket.timeout, ConnectionError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"{url}: {reason}") from None
    if sha256 is not None:
        got = sha256_file(part)
        if got != sha256:
            part.unlink()
            raise DownloadError(f"{url}: sha256 {got[:12]}… does not match the pinned {sha256[:12]}…")
    part.replace(dest)
    return dest
