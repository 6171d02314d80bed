"""Characters that make text read otherwise than it shows: shown as U+FFFD wherever a person
reads a record's text (the terminal: swarm/output.py; the dashboard: app.js, from the boot data)
and wherever a language model reads it (roles/untrusted.py).

C0 and C1 controls but tab and newline (a terminal's escape sequences); every format character
(Unicode Cf: bidirectional overrides, embeddings, isolates and marks, zero-width spaces and
joiners, word joiners, the byte order mark, tag characters); line and paragraph separators; and
the invisible letters and marks that let two different names print alike (the combining grapheme
joiner, Hangul fillers, variation selectors). Homoglyphs (a Cyrillic "а" for a Latin "a") are
visible characters and stay: a name is never an identity, the peer id beside it is.
"""
from __future__ import annotations

import re

# (first, last) code points, inclusive
RANGES: tuple[tuple[int, int], ...] = (
    (0x00, 0x08), (0x0B, 0x1F), (0x7F, 0x9F), (0xAD, 0xAD), (0x034F, 0x034F),
    (0x0600, 0x0605), (0x061C, 0x061C), (0x06DD, 0x06DD), (0x070F, 0x070F), (0x0890, 0x0891),
    (0x08E2, 0x08E2), (0x115F, 0x1160), (0x17B4, 0x17B5), (0x180B, 0x180F), (0x200B, 0x200F),
    (0x2028, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0), (0xFFF9, 0xFFFB), (0x110BD, 0x110BD), (0x110CD, 0x110CD),
    (0x13430, 0x1343F), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF),
)


def _class(escape: str) -> str:
    return "".join(escape.format(a) if a == b else escape.format(a) + "-" + escape.format(b)
                   for a, b in RANGES)


PATTERN = re.compile("[" + _class("\\U{:08x}") + "]")
# The same class for a JavaScript RegExp with the "u" flag (app.js reads it from the boot data)
JS_CLASS = _class("\\u{{{:x}}}")


def visible(text: str) -> str:
    """`text` with every character above replaced by U+FFFD."""
    return PATTERN.sub("\ufffd", text)
