"""What a Messages API server answered, read defensively: the server behind `ANTHROPIC_BASE_URL`
may be broken or hostile, so a reply that is no answer, or an answer far longer than `max_tokens`
allows, is an error of ours (ValueError), never a crash or a long parse. An answer is read as one
JSON object, strictly (`one_object`): a peer's text that the model echoes must not add a second
meaning to it."""
from __future__ import annotations

import json
from typing import Any

# An answer is at most a few KB (max_tokens is 1024 or less); anything far longer is not one.
MAX_ANSWER = 64 * 1024


class BrokenReply(ValueError):
    """The server's reply is not a Messages API answer."""


def reply_text(reply: Any) -> str:
    """The text of a Messages API reply's text blocks, or BrokenReply."""
    content = getattr(reply, "content", None)
    if not isinstance(content, list):
        raise BrokenReply(f"a {type(reply).__name__} reply without a content list")
    texts = [getattr(block, "text", "") for block in content]
    if not all(isinstance(t, str) for t in texts):
        raise BrokenReply("a content block whose text is not a string")
    return "".join(texts)


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if len({k for k, _ in pairs}) != len(pairs):
        raise ValueError("a key given twice")
    return dict(pairs)


# Python's json reads NaN and Infinity, and keeps the last of two equal keys: an answer that says
# both 1 and 10 for one score has no one meaning, so neither is read.
_DECODER = json.JSONDecoder(parse_constant=_no_constant, object_pairs_hook=_unique_keys)


def one_object(text: str) -> Any:
    """The one JSON object in a model's answer (prose around it allowed, as models write), or
    ValueError: no object, an answer over MAX_ANSWER, NaN / Infinity, a key given twice, or a
    second object (an answer that echoes a hostile peer's object beside its own). Linear in
    the answer's length."""
    if len(text) > MAX_ANSWER:
        raise ValueError(f"the answer has {len(text)} characters (at most {MAX_ANSWER})")
    start = text.find("{")
    if start < 0:
        raise ValueError("no JSON object found")
    try:
        answer, end = _DECODER.raw_decode(text, start)
    except ValueError as exc:
        raise ValueError(f"not one JSON object: {str(exc)[:200]}") from None
    if "{" in text[end:] or "}" in text[end:]:
        raise ValueError("more than one JSON object")
    return answer
