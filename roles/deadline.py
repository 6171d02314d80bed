"""A total wall-clock deadline on each Messages API call.

The SDK's `timeout` bounds each socket operation, not a call: a server behind `ANTHROPIC_BASE_URL`
that drips one byte just inside it holds the agent's (or judge's) step for as long as it drips.
`Deadline.client` makes an SDK client whose every connect, read and write inside `within()` gets
at most what is left of the call's `total_s`; past it, the read fails as a timeout, which the SDK
raises as `APITimeoutError` (an `APIError`), and the callers fall back as for any API error.

The deadline lives in the network backend of the SDK's connection pools (where httpcore does its
socket I/O), so it cuts a drip in the status line, the headers or the body alike.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)
DEFAULT_TOTAL_S = 120.0     # one call, every retry of a step's answer included


class Deadline:
    """The end of the call in progress, per thread (None outside `within()`)."""

    def __init__(self, total_s: float = DEFAULT_TOTAL_S) -> None:
        self.total_s = total_s
        self._local = threading.local()

    @contextmanager
    def within(self) -> Iterator[None]:
        """Calls made in this block together get at most `total_s` seconds."""
        self._local.end = time.monotonic() + self.total_s
        try:
            yield
        finally:
            self._local.end = None

    def cap(self, timeout: float | None, error: type[Exception]) -> float | None:
        """`timeout` shortened to what is left of the call; `error` if nothing is."""
        end = getattr(self._local, "end", None)
        if end is None:
            return timeout
        left = end - time.monotonic()
        if left <= 0:
            raise error(f"the call's {self.total_s:g}-s deadline passed")
        return left if timeout is None else min(timeout, left)

    def client(self, anthropic: Any, **options: Any) -> Any:
        """An `anthropic.Anthropic(**options)` whose calls inside `within()` obey this deadline."""
        http = anthropic.DefaultHttpxClient()
        try:
            for transport in [http._transport, *http._mounts.values()]:   # env proxies: mounts
                pool = getattr(transport, "_pool", None)
                if pool is not None:
                    pool._network_backend = _Backend(pool._network_backend, self)
        except AttributeError as exc:
            # Private parts of the SDK's HTTP stack: another SDK version may lack them. The agent
            # then keeps working with the per-read timeout only (tests/roles catch the drip).
            log.warning("no total deadline on Messages API calls with this SDK: %s", exc)
        return anthropic.Anthropic(http_client=http, **options)


def _errors() -> Any:
    import httpcore2    # the SDK's own HTTP stack (a fork of httpcore)

    return httpcore2


class _Backend:
    """A network backend whose streams obey a `Deadline`."""

    def __init__(self, inner: Any, deadline: Deadline) -> None:
        self.inner, self.deadline = inner, deadline

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None, socket_options: Any = None) -> _Stream:
        timeout = self.deadline.cap(timeout, _errors().ConnectTimeout)
        return _Stream(self.inner.connect_tcp(host, port, timeout, local_address, socket_options),
                       self.deadline)

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Any = None) -> _Stream:
        timeout = self.deadline.cap(timeout, _errors().ConnectTimeout)
        return _Stream(self.inner.connect_unix_socket(path, timeout, socket_options), self.deadline)

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


class _Stream:
    """A network stream whose reads and writes get at most what is left of the call."""

    def __init__(self, inner: Any, deadline: Deadline) -> None:
        self.inner, self.deadline = inner, deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self.inner.read(max_bytes, self.deadline.cap(timeout, _errors().ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.inner.write(buffer, self.deadline.cap(timeout, _errors().WriteTimeout))

    def close(self) -> None:
        self.inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> _Stream:
        timeout = self.deadline.cap(timeout, _errors().ConnectTimeout)
        return _Stream(self.inner.start_tls(ssl_context, server_hostname, timeout), self.deadline)

    def get_extra_info(self, info: str) -> Any:
        return self.inner.get_extra_info(info)
