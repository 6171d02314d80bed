"""Names that print like another name carry their hash (swarm/lookalike.py, TRUST.md)."""
from __future__ import annotations

from swarm.lookalike import skeleton, tagged
from swarm.output import track_labels

REAL = "tinystories-cpu:" + "a" * 64
CYRILLIC = "tin\u0443stories-cpu:" + "b" * 64       # a Cyrillic "у" for the Latin "y"
FULLWIDTH = "\uff54inystories-cpu:" + "c" * 64       # a fullwidth "ｔ"


def test_a_homoglyph_track_name_is_shown_with_its_hash_and_the_real_one_is_not() -> None:
    """Before, "tinуstories-cpu" (Cyrillic у) was labelled by its name alone, like the real
    track: two rows read the same to a person."""
    labels = track_labels([REAL, CYRILLIC])
    assert labels == {REAL: "tinystories-cpu", CYRILLIC: "tin\u0443stories-cpu:bbbbbbbb"}
    # NFKC folds the fullwidth letter: the same skeleton as the real name, so both are tagged
    labels = track_labels([REAL, CYRILLIC, FULLWIDTH])
    assert labels[REAL] == "tinystories-cpu:aaaaaaaa"
    assert labels[FULLWIDTH] == "\uff54inystories-cpu:cccccccc"


def test_ascii_lookalikes_and_equal_names_are_both_tagged() -> None:
    assert skeleton("rnodel-1") == skeleton("model-l") == skeleton("MODEL_I")
    assert tagged(["model", "rnodel", "sim"]) == {"model", "rnodel"}
    labels = track_labels(["sim:" + "d" * 64, "sim:" + "e" * 64])
    assert sorted(labels.values()) == ["sim:dddddddd", "sim:eeeeeeee"]
