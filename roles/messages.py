"""What a Messages API server answered, read defensively: the server behind `ANTHROPIC_BASE_URL`
may be broken or hostile, so a reply that is no answer, or an answer far longer than `max_tokens`
allows, is an error of ours (ValueError), never a crash or a long parse."""
from __future__ import annotations

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


def object_text(text: str) -> str | None:
    """`text` from its first "{" to its last "}" (a regex search for that is quadratic in the
    "{"s), or None when there is no such span; ValueError for an answer over MAX_ANSWER."""
    if len(text) > MAX_ANSWER:
        raise ValueError(f"the answer has {len(text)} characters (at most {MAX_ANSWER})")
    first, last = text.find("{"), text.rfind("}")
    return text[first:last + 1] if 0 <= first < last else None
