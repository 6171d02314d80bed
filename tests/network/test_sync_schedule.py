"""The periodic sync's schedule: soon after a change, backing off while in sync."""
from __future__ import annotations

from node.host import FOLLOW_UP_S, IDLE_BACKOFF, next_sync_wait
from node.sync import PullResult


def test_pulls_follow_up_after_news_and_back_off_while_in_sync() -> None:
    base = 3.0
    waits, wait = [], base
    for accepted in (0, 0, 0, 4, 0, 0, 0):
        wait = next_sync_wait(wait, PullResult(in_sync=accepted == 0, accepted=accepted), base)
        waits.append(wait)
    assert waits == [6.0, 9.0, 9.0, FOLLOW_UP_S, 3.0, 6.0, 9.0]
    assert max(waits) == IDLE_BACKOFF * base


def test_no_back_off_while_memories_differ_or_pulls_fail() -> None:
    assert next_sync_wait(FOLLOW_UP_S, None, 3.0) == 3.0
    assert next_sync_wait(9.0, None, 3.0) == 3.0
    differ = PullResult(in_sync=False, accepted=0)     # the peer lacks what we have, not vice versa
    assert next_sync_wait(6.0, differ, 3.0) == 3.0
