"""`parse_have` checks a summary's gaps as arrays: it must judge every summary exactly as the
loop over gaps it replaced (kept here as the reference), valid or not, naming the same first fault.
Its speed is measured by scripts/bench_hostile_cpu.py and scripts/bench_have_gaps.py, not here."""
from __future__ import annotations

import random
from typing import Any

import pyarrow as pa
import pytest

from memory import antientropy
from memory.antientropy import parse_have

WEIRD = [1.5, True, False, None, "3", [1], [1, 2, 3], -1, 0, 2**63, 2**63 - 1, 2**64,
         -2**63 - 1, -2**63, b"x", {}, [[1, 1]]]


def reference(value: Any) -> antientropy.Have:
    """The per-gap loop parse_have used before (main at b457653)."""
    def int_in(v: Any, lo: int, hi: int) -> bool:
        return type(v) is int and lo <= v < hi
    if not isinstance(value, dict) or len(value) > antientropy.MAX_AUTHORS:
        raise ValueError("a have-summary is a map of at most %d authors" % antientropy.MAX_AUTHORS)
    authors, tops, xors, gap_authors, los, his = [], [], [], [], [], []
    for author, entry in value.items():
        if not (isinstance(author, str) and len(author) < 100 and isinstance(entry, list)
                and len(entry) == 3 and int_in(entry[0], 0, 2**63)
                and isinstance(entry[1], list) and int_in(entry[2], 0, 2**64)):
            raise ValueError(f"bad have-summary entry for {str(author)[:60]!r}")
        after = 0
        for gap in entry[1]:
            if not (isinstance(gap, list) and len(gap) == 2 and int_in(gap[0], after + 1, 2**63)
                    and int_in(gap[1], gap[0], entry[0])):
                raise ValueError(f"bad gap {str(gap)[:60]} for {author[:60]!r}: gaps are "
                                 "[lo, hi], lo <= hi < max seq, ascending, a held seq between two")
            gap_authors.append(author)
            los.append(gap[0])
            his.append(gap[1])
            after = gap[1] + 1
        if len(los) > antientropy.MAX_GAPS:
            raise ValueError("too many gaps in a have-summary")
        authors.append(author)
        tops.append(entry[0])
        xors.append(entry[2])
    return antientropy.Have(
        pa.table({"author": pa.array(authors, pa.string()), "max_seq": pa.array(tops, pa.uint64()),
                  "xor8": pa.array(xors, pa.uint64())}),
        pa.table({"author": pa.array(gap_authors, pa.string()), "lo": pa.array(los, pa.uint64()),
                  "hi": pa.array(his, pa.uint64())}))


def judged(parse: Any, value: Any) -> tuple[Any, ...]:
    """What `parse` makes of `value`: its tables (schema and rows), or its refusal."""
    try:
        have = parse(value)
    except ValueError as exc:
        return ("refused", str(exc))
    return ("parsed", have.authors.schema, have.authors.to_pydict(), have.gaps.schema,
            have.gaps.to_pydict())


def summary(rnd: random.Random) -> dict[Any, Any]:
    """A small summary, valid or spoiled in one of many ways."""
    have: dict[Any, Any] = {}
    for a in range(rnd.randint(0, 5)):
        top = rnd.choice([0, 1, 5, 50, 2**63 - 1, rnd.randint(0, 100)])
        gaps, seq = [], 1
        for _ in range(rnd.randint(0, 8)):
            lo = seq + rnd.choice([0, 0, 1, 2, -1, 5])
            hi = lo + rnd.choice([0, 1, 3, -1])
            gaps.append([lo, hi])
            seq = hi + 2
        if gaps and rnd.random() < 0.5:
            i, roll = rnd.randrange(len(gaps)), rnd.random()
            if roll < 0.3:
                gaps[i] = rnd.choice(WEIRD)
            elif roll < 0.6:
                gaps[i][rnd.randrange(2)] = rnd.choice(WEIRD)
            else:
                gaps[i] = gaps[i] + [1]
        entry: list[Any] = [top, gaps, rnd.choice([0, 7, 2**64 - 1])]
        if rnd.random() < 0.1:
            entry[rnd.randrange(3)] = rnd.choice(WEIRD)
        if rnd.random() < 0.05:
            entry = entry[:2]
        have[f"a{a}" if rnd.random() > 0.05 else rnd.choice(["x" * 100, "b", 7])] = entry
    return have


@pytest.mark.parametrize("max_gaps", [antientropy.MAX_GAPS, 5])
def test_parse_have_judges_every_summary_as_the_loop_did(monkeypatch, max_gaps) -> None:
    monkeypatch.setattr(antientropy, "MAX_GAPS", max_gaps)
    rnd = random.Random(5)
    outcomes = set()
    for _ in range(4000):
        value = summary(rnd)
        mine = judged(parse_have, value)
        assert mine == judged(reference, value), value
        outcomes.add(mine[0] if mine[0] == "parsed" else mine[1].split(" for ")[0][:12])
    assert {"parsed", "bad have-sum", "bad gap [1, "}.issubset(outcomes)
    assert max_gaps > 5 or "too many gap" in outcomes


@pytest.mark.parametrize("last", [[1, 1], [1.0, 3], [True, 2**70], [2**70, 2**70], "x", [5]])
def test_a_long_summary_spoiled_in_its_last_gap_is_refused_as_before(last) -> None:
    """A hostile summary's shape: every gap valid but the last (the check finds it without a
    Python step per gap, and names it as the loop did)."""
    gaps: list[Any] = [[2 * k + 1, 2 * k + 1] for k in range(50_000)]
    gaps[-1] = last
    value = {"a": [2**40, gaps, 0], "b": [3, [[1, 1]], 1]}
    assert judged(parse_have, value) == judged(reference, value)
    assert judged(parse_have, value)[0] == "refused"
    gaps[-1] = [99_999, 99_999]
    assert judged(parse_have, value) == judged(reference, value)
    assert parse_have(value).gaps.num_rows == 50_001
