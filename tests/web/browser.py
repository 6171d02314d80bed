"""A small headless-Chromium driver over the DevTools protocol (`--remote-debugging-pipe`).

Debian's `chromium` package, no browser download and no websocket library: the protocol runs over
two pipes (fd 3 in, fd 4 out), messages separated by NUL bytes. It records every request the page
makes and every console error or uncaught exception.
"""
from __future__ import annotations

import base64
import itertools
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    """The browser binary on PATH, or None."""
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    """One headless browser with one page (tab)."""

    def __init__(self, binary: str, offline: bool = False) -> None:
        self._profile = tempfile.mkdtemp(prefix="swarm-chromium-")
        to_child, self._write_fd = os.pipe()
        self._read_fd, from_child = os.pipe()
        args = [binary, "--headless=new", "--remote-debugging-pipe", "--no-sandbox",
                "--disable-gpu", "--no-first-run", "--no-default-browser-check",
                "--disable-extensions", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--metrics-recording-only",
                f"--user-data-dir={self._profile}", "--window-size=1200,900"]
        if offline:
            # Nothing resolves: a page that needed the network would show it.
            args.append("--host-resolver-rules=MAP * ~NOTFOUND")
        self._proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=(3, 4, to_child, from_child),
            preexec_fn=lambda: _dup_to(to_child, from_child))
        os.close(to_child)
        os.close(from_child)
        self._ids = itertools.count(1)
        self._replies: dict[int, queue.Queue[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._read_loop, daemon=True).start()
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self._session = self.call("Target.attachToTarget",
                                  {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Network", "Log"):
            self.call(f"{domain}.enable", session=True)

    def _read_loop(self) -> None:
        buffer = b""
        while chunk := os.read(self._read_fd, 1 << 16):
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for raw in messages:
                message = json.loads(raw)
                if "id" in message and message["id"] in self._replies:
                    self._replies[message["id"]].put(message)
                else:
                    with self._lock:
                        self.events.append(message)

    def call(self, method: str, params: dict[str, Any] | None = None, session: bool = False,
             timeout: float = 60.0) -> dict[str, Any]:
        """Send one command and wait for its result."""
        ident = next(self._ids)
        self._replies[ident] = queue.Queue()
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self._session
        os.write(self._write_fd, json.dumps(message).encode() + b"\0")
        reply = self._replies[ident].get(timeout=timeout)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def open(self, url: str, timeout: float = 120.0) -> None:
        """Navigate the page to `url` and wait for its load event.

        (Evaluating while a navigation is under way may never be answered: the old document's
        context goes away under the command.)"""
        with self._lock:
            self.events.clear()
        self.call("Page.navigate", {"url": url}, session=True)
        deadline = time.monotonic() + timeout
        while not self._seen("Page.loadEventFired"):
            if time.monotonic() > deadline:
                raise AssertionError(f"{url} did not load in {timeout:.0f} s")
            time.sleep(0.05)

    def _seen(self, method: str) -> bool:
        with self._lock:
            return any(e.get("method") == method for e in self.events)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True}, session=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"evaluate failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 120.0) -> None:
        """Poll until `expression` is truthy in the page."""
        deadline = time.monotonic() + timeout
        while not self.evaluate(expression):
            if time.monotonic() > deadline:
                raise AssertionError(f"page never satisfied {expression!r}; errors: {self.errors()}")
            time.sleep(0.1)

    def requested_urls(self) -> list[str]:
        """Every URL the page requested since `open`."""
        with self._lock:
            return [e["params"]["request"]["url"] for e in self.events
                    if e.get("method") == "Network.requestWillBeSent"]

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and error log entries since `open`."""
        found = []
        with self._lock:
            events = list(self.events)
        for e in events:
            method, params = e.get("method"), e.get("params", {})
            if method == "Runtime.exceptionThrown":
                found.append(json.dumps(params.get("exceptionDetails", {}))[:500])
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append(json.dumps(params.get("args", []))[:500])
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                found.append(params["entry"].get("text", "")[:500])
        return found

    def viewport(self, width: int, height: int) -> None:
        """Lay the page out as a screen of `width` x `height` CSS pixels (a phone when narrow:
        the page's viewport meta tag then applies)."""
        self.call("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
            session=True)

    def screenshot(self, path: Path) -> None:
        """Save the whole page as PNG."""
        data = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True},
                         session=True)["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        """End the browser and remove its profile."""
        self._proc.terminate()
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(10)
        os.close(self._write_fd)
        shutil.rmtree(self._profile, ignore_errors=True)


def _dup_to(to_child: int, from_child: int) -> None:
    # The protocol's fixed descriptors: the browser reads commands on 3 and writes on 4. Copy both
    # out of the way first: either pipe end may itself be 3 or 4.
    read_end, write_end = os.dup(to_child), os.dup(from_child)
    os.dup2(read_end, 3)
    os.dup2(write_end, 4)
