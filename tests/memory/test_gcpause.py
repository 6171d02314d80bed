"""The collector's pause across threads: nested, restored, and never kept off for good."""
from __future__ import annotations

import gc
import threading
import time

from memory import gcpause


def _hold(entered: threading.Event, release: threading.Event, seen: list[bool]) -> None:
    with gcpause.gc_paused():
        seen.append(gc.isenabled())
        entered.set()
        release.wait(60)


def test_pauses_nest_across_threads_and_the_collector_runs_after_the_last() -> None:
    assert gc.isenabled()
    entered, release, seen = threading.Event(), threading.Event(), []
    other = threading.Thread(target=_hold, args=(entered, release, seen), daemon=True)
    other.start()
    assert entered.wait(60)
    with gcpause.gc_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()                # the other thread's pause goes on
    release.set()
    other.join(60)
    assert gc.isenabled() and seen == [False]


def test_overlapping_pauses_do_not_keep_the_collector_off(monkeypatch) -> None:
    # requesters taking turns to send have frames overlapped their parses: past MAX_PAUSE_S a
    # new block runs with the collector as it is, so the pauses end and it runs again
    monkeypatch.setattr(gcpause, "MAX_PAUSE_S", 0.0)
    entered, release, seen = threading.Event(), threading.Event(), []
    other = threading.Thread(target=_hold, args=(entered, release, seen), daemon=True)
    other.start()
    assert entered.wait(60)
    time.sleep(0.01)                         # the pause is older than MAX_PAUSE_S
    with gcpause.gc_paused():
        release.set()
        other.join(60)
        assert gc.isenabled()                # the first pause ended; this block never joined
    assert gc.isenabled()
