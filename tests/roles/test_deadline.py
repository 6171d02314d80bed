"""roles/deadline.py reaches into private parts of the SDK's HTTP stack; an SDK without them must
still give a working client (the per-read timeout only), never break the agent."""
from __future__ import annotations

import logging
from types import SimpleNamespace

import anthropic

from roles.deadline import Deadline


def test_this_sdk_gets_the_deadline_in_its_pools(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="roles.deadline"):
        client = Deadline(5).client(anthropic, api_key="test", base_url="http://127.0.0.1:9")
    assert isinstance(client, anthropic.Anthropic) and not caplog.records
    client.close()


def test_an_sdk_without_those_parts_still_gives_a_client(caplog) -> None:
    sdk = SimpleNamespace(DefaultHttpxClient=object, Anthropic=lambda **kw: kw)
    with caplog.at_level(logging.WARNING, logger="roles.deadline"):
        made = Deadline(5).client(sdk, api_key="test")
    assert made["api_key"] == "test" and made["http_client"] is not None
    assert "no total deadline" in caplog.text
