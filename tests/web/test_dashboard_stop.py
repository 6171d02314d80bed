"""`swarm dashboard` stopped by Ctrl-C while pages and live event streams are in flight: it ends
without a traceback or an ERROR line (uvicorn cancelled them and logged each one)."""
from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from tests.network.launcher import wait_for


def test_ctrl_c_with_event_streams_open_logs_no_error(history_home: Path, tmp_path: Path) -> None:
    out = tmp_path / "dashboard.log"
    with out.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-c", "from swarm.cli import main; main()",
                                 "dashboard", "--home", str(history_home), "--port", "0"],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = wait_for(lambda: re.search(r"http://127\.0\.0\.1:\d+/", out.read_text()), 120,
                       "the dashboard to listen").group()
        wait_for(lambda: _answers(url), 120, "the dashboard to answer")  # listening after the line
        streamed: list[bytes] = []

        def follow_events() -> None:            # a tab left open: its stream never ends by itself
            with urllib.request.urlopen(url + "events", timeout=120) as response:
                streamed.append(response.read())
        readers = [threading.Thread(target=follow_events, daemon=True) for _ in range(2)]
        for reader in readers:
            reader.start()
        time.sleep(1.0)                          # the streams are open by now; either way ...
        proc.send_signal(signal.SIGINT)
        proc.wait(60)                            # ... the stop ends them within its grace
        for reader in readers:
            reader.join(60)
        text = out.read_text()
        assert "Traceback" not in text and "ERROR" not in text, text[-3000:]
        assert len(streamed) == 2 and all(b"event: records" in s for s in streamed)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.status == 200
    except OSError:
        return False
